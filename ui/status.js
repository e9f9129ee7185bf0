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

// A URL with a break opportunity (<wbr>) after each run of "/", "?", "&",
// "=", "#" ("https://" stays whole) and after a dot in a name ("mcp.", not
// "127."), so it wraps between its parts, never mid-word. Text nodes only:
// nothing from the server is parsed as markup.
function urlNode(url) {
  const node = el("small", { className: "url" });
  const separator = (ch) => "/?&=#.".includes(ch);
  const breakAfter = (part) => {
    const last = part[part.length - 1];
    return "/?&=#".includes(last) || (last === "." && /[a-z]/i.test(part));
  };
  let part = "";
  for (const ch of url) {
    if (part && !separator(ch) && breakAfter(part)) {
      node.append(part, document.createElement("wbr"));
      part = "";
    }
    part += ch;
  }
  if (part) node.append(part);
  return node;
}

function renderRow(row) {
  const actions = el("td", { className: "actions" });
  for (const action of row.actions) {
    actions.append(el("button", { type: "button", textContent: action.label, onclick: () => act(action.id) }));
  }
  const name = el("td", { className: "name" }, row.name);
  if (row.profile) name.append(el("small", { textContent: `profile ${row.profile}` }));
  if (row.url) name.append(urlNode(row.url));
  const state = el("td", { className: `state-${row.state}`, textContent: stateText(row) });
  if (row.check === "unreachable") state.classList.add("unreachable");
  if (row.detail) state.append(el("small", { textContent: ` (${row.detail})` }));
  if (row.checked) state.append(el("small", { className: "checked", textContent: row.checked }));
  const tr = el(
    "tr",
    { id: `row-${row.profile || "default"}-${row.name}` },
    name,
    state,
    el("td", { className: "left", textContent: row.time_left || "" }),
    el("td", { textContent: row.scopes.join(" ") }),
    el("td", { className: "issuer" }, ...(row.issuer ? [urlNode(row.issuer)] : [])),
    el("td", { textContent: row.last_error || "" }),
    actions,
  );
  if (focus && row.actions.concat([{ id: `details:${row.profile || ""}:${row.name}` }]).some((a) => a.id === focus)) {
    tr.classList.add("focus");
  }
  return tr;
}

// The other clients: the tray's submenu model (labels worded by the app),
// as nested lists; an enabled item ("Sign in", "Use in …") is a button.
function renderLine(line) {
  if (line.kind === "submenu") {
    return el("li", {}, el("span", { textContent: line.label }), el("ul", {}, ...line.lines.map(renderLine)));
  }
  if (line.kind === "item" && line.enabled) {
    return el("li", {}, el("button", { type: "button", textContent: line.label, onclick: () => act(line.id) }));
  }
  return el("li", { textContent: line.label || "" });
}

async function act(id) {
  try {
    await tauri.core.invoke("menu_action", { id });
  } catch (e) {
    // Commands fail with `{code, message}`.
    show("engine", (e && e.message) || String(e));
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
  document.getElementById("clients").hidden = !page.clients;
  document.getElementById("client-groups").replaceChildren(...(page.clients ? page.clients.lines.map(renderLine) : []));
  document.querySelector("tr.focus")?.scrollIntoView({ block: "center" });
  let lines;
  try {
    lines = await tauri.core.invoke("log_tail");
  } catch (e) {
    lines = [(e && e.message) || String(e)];
  }
  const log = document.getElementById("log-lines");
  log.textContent = lines.slice(-200).join("\n");
  log.scrollTop = log.scrollHeight;
}

refresh();
tauri.event.listen("status-changed", refresh);
