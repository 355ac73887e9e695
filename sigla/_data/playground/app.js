// The sigla playground: chat with the served models and try the server's prompt files
// (those are prompts.js, which shares this script's globals).
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

// Deferred scripts all run before DOMContentLoaded: prompts.js has defined loadPrompts by then.
document.addEventListener("DOMContentLoaded", loadAll);
