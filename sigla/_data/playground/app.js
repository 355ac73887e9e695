// The sigla playground: chat with the served models and try the server's prompt files.
// Every piece of text from the server or a model goes into the page as text (textContent,
// createTextNode), never as HTML: an answer containing <script> is shown, not run.
"use strict";

const KEY_STORAGE = "sigla.apiKey"; // sessionStorage only: never localStorage, never a cookie
const $ = (id) => document.getElementById(id);

const state = {
  history: [], // completed turns, oldest first: [{role, content}]
  controller: null, // the AbortController of the answer being streamed
  models: null, // GET /models
  prompt: null, // the opened prompt file (GET /prompts/{id})
};

// ------------------------------------------------------------------ DOM helpers

/** An element with a class, attributes and text children (strings become text nodes). */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch (_) {
    return null;
  }
}

function setStatus(text) {
  $("status").textContent = text;
}

function formatUsage(usage, finishReason, model) {
  const u = usage || {};
  const parts = [
    `${u.prompt_tokens ?? "?"} prompt + ${u.completion_tokens ?? "?"} completion = ` +
      `${u.total_tokens ?? "?"} tokens`,
  ];
  if (finishReason) parts.push(`finish: ${finishReason}`);
  if (model) parts.push(model);
  return parts.join(" · ");
}

// ------------------------------------------------------------------ the API key

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

/** Show the key form; `message` says why (none yet, or the last one was refused). */
function askForKey(message) {
  $("key-message").textContent = message;
  $("key-form").hidden = false;
  $("key-input").focus();
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("key-input").value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORAGE, key);
  $("key-input").value = "";
  $("key-form").hidden = true;
  loadAll();
});

// ------------------------------------------------------------------ talking to the server

/** An error answer of the server, with what the page shows for it. */
class ApiError extends Error {
  constructor(status, type, message, retryAfter) {
    super(message);
    this.status = status;
    this.type = type;
    this.retryAfter = retryAfter;
  }
}

/** fetch() with the key; a non-2xx answer throws ApiError (a 401 also asks for the key). */
async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "unreachable", "The server could not be reached.", null);
  }
  if (response.ok) return response;
  // Not JSON (a proxy's page): the status says enough.
  const error = (parseJson(await response.text()) || {}).error || {};
  const failure = new ApiError(
    response.status,
    error.type || "http_error",
    error.message || `The server answered HTTP ${response.status}.`,
    response.headers.get("Retry-After"),
  );
  if (response.status === 401) {
    // Several calls may be refused at once: each speaks of the key it sent, and only the
    // key that was refused is forgotten (not one entered meanwhile).
    if (apiKey() === key) sessionStorage.removeItem(KEY_STORAGE);
    askForKey(key ? "The server refused that key: enter it again." : "This server needs a key.");
  }
  throw failure;
}

/** The service's message plus what to do about it ({status, type, message, retryAfter}). */
function describeError({ status, type, message, retryAfter }) {
  const text = (message || "").trim();
  const wait = retryAfter ? ` Wait ${retryAfter} s, then try again.` : "";
  if (status === 401) return `${text} Enter your API key in the form above, then try again.`;
  if (status === 429) return `${text}${wait || " Wait a minute, then try again."}`;
  if (status === 413) {
    return `${text} Shorten the input (or start a new conversation), then try again.`;
  }
  if (type === "service_retired") {
    return `${text} The service is retired: ask the server's operator to move to its successor.`;
  }
  if (status === 503) return `${text}${wait || " Tell the server's operator."}`;
  if (status === 404 && type === "model_not_found") return `${text} Pick another model.`;
  if (status === 422) return `${text} Fix that, then try again.`;
  if (status === 0) return `${text} Check that sigla serve is running, then try again.`;
  if (status >= 500) return `${text} Try again in a moment.`;
  return text;
}

/** What the page shows for a failed call: the server's error explained, or the exception. */
function errorText(err) {
  return err instanceof ApiError ? describeError(err) : `Something went wrong: ${err}`;
}

async function postJson(path, body) {
  return (await api(path, { method: "POST", body })).json();
}

// ------------------------------------------------------------------ loading models, prompts

async function loadAll() {
  setStatus("Loading…");
  // Independent: the prompt files are local to the server, the models need the service.
  const results = await Promise.allSettled([loadModels(), loadPrompts()]);
  const failed = results.filter((r) => r.status === "rejected").map((r) => errorText(r.reason));
  setStatus(failed.join(" "));
}

/** Fill the model selects from GET /models; temperature and max tokens default to its. */
async function loadModels() {
  const models = await (await api("/models")).json();
  state.models = models;
  const chat = $("model");
  const served = models.served || [];
  const chosen = served.includes(chat.value) ? chat.value : models.default; // kept on reload
  chat.replaceChildren();
  for (const id of served) {
    const option = el("option", { value: id }, id);
    option.selected = id === chosen;
    chat.append(option);
  }
  const defaults = models.defaults || {};
  const given = [["temperature", defaults.temperature], ["max-tokens", defaults.max_tokens]];
  for (const [field, value] of given) {
    if (value != null && $(field).value === "") $(field).value = String(value);
  }
}

// ------------------------------------------------------------------ chat

/** One bubble of the conversation: a role label, its text, and a line under it. */
function addBubble(role, text) {
  const body = el("div", { class: "text", "data-testid": "bubble-text" }, text);
  const meta = el("p", { class: "meta", "data-testid": "bubble-meta" });
  const bubble = el("li", { class: `bubble ${role}`, "data-testid": `bubble-${role}` });
  bubble.append(el("span", { class: "role" }, role === "user" ? "You" : "Model"), body, meta);
  $("history").append(bubble);
  bubble.scrollIntoView({ block: "end" });
  return { bubble, body, meta };
}

function chatOptions() {
  const options = {};
  const system = $("system").value;
  if (system.trim()) options.system = system;
  if ($("model").value) options.model = $("model").value;
  const temperature = $("temperature").value;
  if (temperature !== "") options.temperature = Number(temperature);
  const maxTokens = $("max-tokens").value;
  if (maxTokens !== "") options.max_tokens = Number(maxTokens);
  return options;
}

/**
 * An incremental SSE parser: feed() it decoded text as it arrives; it calls
 * onEvent(name, data) per complete event ("message" when unnamed). Comments are skipped.
 */
function sseParser(onEvent) {
  let buffer = "";
  let name = "message";
  let data = [];
  function line(text) {
    if (text === "") {
      if (data.length) onEvent(name, data.join("\n"));
      name = "message";
      data = [];
      return;
    }
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  return {
    /** The stream ended: a \r left waiting for a possible \n was a line end after all. */
    end() {
      if (buffer.endsWith("\r")) this.feed("\n");
    },
    feed(chunk) {
      buffer += chunk;
      let end;
      // Lines end with \n, \r\n or \r; a trailing \r may be half of a \r\n still coming.
      while ((end = buffer.search(/\r\n|\n|\r(?!$)/)) >= 0) {
        const size = buffer.startsWith("\r\n", end) ? 2 : 1;
        line(buffer.slice(0, end));
        buffer = buffer.slice(end + size);
      }
    },
  };
}

/** Send the message box's text with the history; stream the answer into a new bubble. */
async function sendChat() {
  const prompt = $("message").value;
  if (!prompt.trim() || state.controller) return;
  $("message").value = "";
  $("message").focus(); // Send is disabled while the answer streams: keep the keyboard here
  addBubble("user", prompt);
  const view = addBubble("assistant", "Waiting for the answer…");
  // data-state (pending, streaming, done, error, stopped, cut) is for CSS and the tests.
  view.bubble.dataset.state = "pending";
  const controller = new AbortController();
  state.controller = controller;
  $("stop").disabled = false;
  $("send").disabled = true;
  const body = { prompt, messages: state.history.slice(), ...chatOptions() };
  let answer = "";
  let ended = null; // "done" or "error" once the stream says so
  try {
    const signal = controller.signal;
    const response = await api("/llm/stream", { method: "POST", body, signal });
    const parser = sseParser((name, data) => {
      const payload = parseJson(data);
      if (payload === null) return; // not JSON: not an event of this server
      if (name === "message" && typeof payload.delta === "string") {
        view.bubble.dataset.state = "streaming";
        answer += payload.delta;
        view.body.textContent = answer;
      } else if (name === "done") {
        ended = "done";
        const usage = formatUsage(payload.usage, payload.finish_reason, payload.model);
        view.meta.replaceChildren(el("span", { "data-testid": "usage" }, usage));
      } else if (name === "error") {
        ended = "error";
        failBubble(view, answer, describeError({ status: payload.status, ...payload.error }));
      }
    });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.feed(decoder.decode(value, { stream: true }));
      if (ended) {
        // The answer is complete: a Stop pressed before the connection closes keeps it.
        reader.cancel().catch(() => {});
        break;
      }
    }
    parser.feed(decoder.decode()); // an event left unfinished at the end is dropped (SSE)
    parser.end();
    if (ended === "done") {
      if (!answer) view.body.textContent = "(the model answered nothing)";
      view.bubble.dataset.state = "done";
      state.history.push({ role: "user", content: prompt }, { role: "assistant", content: answer });
    } else if (ended === null) {
      const why = "The answer was cut short: the stream ended before the server said it was done.";
      failBubble(view, answer, `${why} Send again.`);
      view.bubble.dataset.state = "cut";
    }
    if (ended !== "done" && !$("message").value) $("message").value = prompt; // to send again
  } catch (err) {
    if (err.name === "AbortError") {
      if (!answer) view.body.textContent = "(stopped before any text)";
      view.meta.textContent = "Stopped: this answer is not kept in the conversation.";
      view.bubble.dataset.state = "stopped";
    } else {
      failBubble(view, answer, errorText(err));
    }
    if (err.name !== "AbortError" && !$("message").value) $("message").value = prompt;
  } finally {
    state.controller = null;
    $("stop").disabled = true;
    $("send").disabled = false;
  }
}

/** Show an error in an answer's bubble, keeping any text that arrived before it. */
function failBubble(view, answer, message) {
  if (!answer) view.body.textContent = "(no answer)";
  const shown = el("span", { class: "error", "data-testid": "bubble-error" }, message);
  view.meta.replaceChildren(shown);
  view.bubble.dataset.state = "error";
}

$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sendChat();
});

$("message").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    sendChat();
  }
});

$("stop").addEventListener("click", () => {
  if (state.controller) state.controller.abort();
});

$("clear").addEventListener("click", () => {
  if (state.controller) state.controller.abort();
  state.history = [];
  $("history").replaceChildren();
  $("message").focus();
});

// ------------------------------------------------------------------ prompt files

/** List GET /prompts: a button per valid file, the error of an invalid one. */
async function loadPrompts() {
  const { prompts } = await (await api("/prompts")).json();
  const list = $("prompt-list");
  list.replaceChildren();
  if (!prompts.length) list.append(el("li", { class: "meta" }, "This server has no prompt files."));
  for (const p of prompts) {
    const item = el("li", { "data-testid": "prompt-item", "data-id": p.id });
    if (p.error) {
      item.append(
        el("strong", {}, p.id),
        el("p", { class: "error", "data-testid": "prompt-invalid" }, p.error),
      );
    } else {
      const open = el("button", { type: "button", class: "link" }, p.name || p.id);
      open.addEventListener("click", () => openPrompt(p.id));
      item.append(open, el("p", { class: "meta" }, p.description || ""));
    }
    list.append(item);
  }
}

/** A list of messages, each with its role, shown as text. */
function renderMessages(target, messages) {
  target.replaceChildren();
  for (const m of messages) {
    target.append(
      el("li", { class: `message ${m.role}` }, el("span", { class: "role" }, m.role),
        el("pre", {}, m.content)),
    );
  }
}

function showPromptError(err) {
  const box = $("prompt-error");
  box.textContent = errorText(err);
  box.hidden = false;
}

/** Open a prompt file: its messages, a field per variable, the model to run it on. */
async function openPrompt(id) {
  for (const hide of ["prompt-error", "prompt-result", "eval-result"]) $(hide).hidden = true;
  try {
    const file = await (await api(`/prompts/${encodeURIComponent(id)}`)).json();
    state.prompt = file; // a run of the previous file still going shows nothing here
    $("prompt-progress").textContent = "";
    $("prompt-run").disabled = false;
    $("prompt-title").textContent = file.name || file.id;
    $("prompt-description").textContent = file.description || "";
    const cases = `${file.testData} test case${file.testData === 1 ? "" : "s"}`;
    const evaluators = (file.evaluators || []).join(", ") || "none";
    $("prompt-meta").textContent = `${file.id} · ${cases} · evaluators: ${evaluators}`;
    renderMessages($("prompt-messages"), file.messages);
    const vars = $("prompt-vars");
    vars.replaceChildren();
    if (!file.variables.length) vars.append(el("p", { class: "meta" }, "No variables."));
    file.variables.forEach((name, i) => {
      const id = `var-${i}`;
      const input = el("textarea", { id, rows: "2", "data-testid": "var-input", "data-var": name });
      vars.append(el("label", { for: id }, `{{${name}}}`), input);
    });
    const served = (state.models && state.models.served) || [];
    const own = el("option", { value: "" }, `the file's (${file.model || "server default"})`);
    $("prompt-model").replaceChildren(own, ...served.map((m) => el("option", { value: m }, m)));
    $("prompt-eval").disabled = !file.testData;
    $("prompt-detail").hidden = false;
    $("prompt-title").scrollIntoView({ block: "start" });
  } catch (err) {
    $("prompt-detail").hidden = false;
    showPromptError(err);
  }
}

/** POST /prompts/{id}/{action} for the opened file with the chosen model; `show` renders
 * the answer. The buttons are disabled and a line says what runs meanwhile. */
async function callPrompt(action, body, doing, show) {
  const file = state.prompt;
  if (!file) return;
  if ($("prompt-model").value) body.model = $("prompt-model").value;
  for (const id of ["prompt-error", "prompt-result", "eval-result"]) $(id).hidden = true;
  $("prompt-run").disabled = $("prompt-eval").disabled = true;
  $("prompt-progress").textContent = `${doing} ${file.name || file.id}…`;
  try {
    const result = await postJson(`/prompts/${encodeURIComponent(file.id)}/${action}`, body);
    if (state.prompt === file) show(result); // another file opened meanwhile: not its result
  } catch (err) {
    if (state.prompt === file) showPromptError(err);
  } finally {
    if (state.prompt === file) {
      $("prompt-progress").textContent = "";
      $("prompt-run").disabled = false;
      $("prompt-eval").disabled = !file.testData;
    }
  }
}

/** Run the opened file with the fields' values; show what was sent and the answer. */
function runPrompt() {
  const variables = Object.create(null); // a {{__proto__}} variable is a key like any other
  // An empty field is left out: the server then names the variable that has no value.
  for (const input of $("prompt-vars").querySelectorAll("textarea")) {
    if (input.value !== "") variables[input.dataset.var] = input.value;
  }
  callPrompt("run", { variables }, "Running", (result) => {
    renderMessages($("prompt-sent"), result.messages);
    $("prompt-answer").textContent = result.answer || "(the model answered nothing)";
    $("prompt-usage").textContent = formatUsage(result.usage, result.finish_reason, result.model);
    $("prompt-result").hidden = false;
  });
}

/** gh-models' eval JSON as cards: per case PASSED/FAILED, its answer, each evaluator. */
function renderReport(report) {
  const list = $("eval-cases");
  list.replaceChildren();
  const total = report.testResults.length;
  report.testResults.forEach((result, i) => {
    const checks = result.evaluationResults || [];
    const passed = checks.every((r) => r.passed);
    const verdict = passed ? "PASSED" : "FAILED";
    const kind = `eval-case ${passed ? "passed" : "failed"}`;
    const card = el("li", { class: kind, "data-testid": "eval-case" });
    const title = `Test case ${i + 1}/${total}: `;
    card.append(el("h4", {}, title, el("span", { "data-testid": "verdict" }, verdict)));
    const shown = (v) => (typeof v === "string" ? v : JSON.stringify(v));
    const vars = Object.entries(result.testCase || {}).map(([k, v]) => `${k}: ${shown(v)}`);
    if (vars.length) card.append(el("pre", { class: "vars" }, vars.join("\n")));
    const answer = result.modelResponse || "";
    card.append(el("pre", { class: "answer", "data-testid": "eval-answer" }, answer));
    const ul = el("ul", { class: "evaluators" });
    for (const r of checks) {
      const score = typeof r.score === "number" ? r.score.toFixed(2) : String(r.score);
      const line = `${r.passed ? "pass" : "FAIL"}  ${r.evaluatorName}  ${score}`;
      const details = r.details ? `  ${r.details}` : "";
      const kind = r.passed ? "pass" : "fail";
      ul.append(el("li", { class: kind, "data-testid": "evaluator" }, line, details));
    }
    card.append(ul);
    list.append(card);
  });
  const s = report.summary;
  const rate = s.totalTests ? s.passRate : 0;
  let line = `Passed: ${s.passedTests}/${s.totalTests} (${Number(rate).toFixed(2)}%)`;
  if (s.failedTests === 0) line += " All tests passed!";
  $("eval-summary").textContent = line;
  $("eval-result").hidden = false;
}

$("prompt-form").addEventListener("submit", (event) => {
  event.preventDefault();
  runPrompt();
});
$("prompt-eval").addEventListener("click", () => {
  callPrompt("eval", {}, "Running the test cases of", renderReport);
});

// ------------------------------------------------------------------ tabs, start

/** Show one section; the tabs are buttons, so Tab and Enter reach them. */
function showTab(name) {
  for (const [tab, panel] of [["tab-chat", "chat"], ["tab-prompts", "prompts"]]) {
    const on = panel === name;
    $(tab).setAttribute("aria-selected", String(on));
    $(panel).hidden = !on;
  }
}
$("tab-chat").addEventListener("click", () => showTab("chat"));
$("tab-prompts").addEventListener("click", () => showTab("prompts"));

loadAll();
