// The status window: renders what the app's `status_rows` command returns and
// sends button clicks to `menu_action` (the same actions as the tray menu).
// It re-reads when the app emits `status-changed`: no timers, no polling.
"use strict";

const tauri = window.__TAURI__;
const focus = new URLSearchParams(location.search).get("focus");

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child);
  return node;
}

function show(id, text) {
  const node = document.getElementById(id);
  node.hidden = !text;
  node.textContent = text || "";
}

function stateText(row) {
  if (row.busy === "signing_in") return "Signing in…";
  if (row.busy === "refreshing") return "Refreshing…";
  // The detail column says why: the word alone is enough here.
  if (row.state === "error" && row.detail) return "Error:";
  // The menu's line without its glyph and name.
  return row.summary.replace(/^\S+\s.*? — /, "");
}

function renderRow(row) {
  const actions = el("td", { className: "actions" });
  for (const action of row.actions) {
    actions.append(el("button", { type: "button", textContent: action.label, onclick: () => act(action.id) }));
  }
  const name = el("td", { className: "name" }, row.name);
  if (row.profile) name.append(el("small", { textContent: `profile ${row.profile}` }));
  if (row.url) name.append(el("small", { textContent: row.url }));
  const state = el("td", { className: `state-${row.state}`, textContent: stateText(row) });
  if (row.detail) state.append(el("small", { textContent: ` (${row.detail})` }));
  const tr = el(
    "tr",
    { id: `row-${row.profile || "default"}-${row.name}` },
    name,
    state,
    el("td", { textContent: row.time_left || "" }),
    el("td", { textContent: row.scopes.join(" ") }),
    el("td", { textContent: row.issuer || "" }),
    el("td", { textContent: row.last_error || "" }),
    actions,
  );
  if (focus && row.actions.concat([{ id: `details:${row.profile || ""}:${row.name}` }]).some((a) => a.id === focus)) {
    tr.classList.add("focus");
  }
  return tr;
}

async function act(id) {
  try {
    await tauri.core.invoke("menu_action", { id });
  } catch (e) {
    show("engine", String(e));
  }
}

async function refresh() {
  const page = await tauri.core.invoke("status_rows");
  document.getElementById("summary").textContent = page.title || "Nothing configured";
  show("note", page.note);
  document.getElementById("about").textContent = page.about || "";
  show("engine", page.engine_missing && `Signing in is off: ${page.engine_missing}`);
  document.getElementById("problems").replaceChildren(...page.problems.concat(page.hints).map((p) => el("li", { textContent: p })));
  document.getElementById("rows").replaceChildren(...page.rows.map(renderRow));
  document.getElementById("empty").hidden = page.rows.length > 0;
  document.querySelector("tr.focus")?.scrollIntoView({ block: "center" });
  const lines = await tauri.core.invoke("log_tail");
  const log = document.getElementById("log-lines");
  log.textContent = lines.slice(-200).join("\n");
  log.scrollTop = log.scrollHeight;
}

refresh();
tauri.event.listen("status-changed", refresh);
