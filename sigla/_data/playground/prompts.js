// The sigla playground's prompt files: list, open, run and evaluate the server's
// .prompt.yml files. Loaded after app.js, whose helpers ($, el, api, state...) it uses; every
// text from the server goes in as text, never HTML.
"use strict";

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

