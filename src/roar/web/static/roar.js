// The R.O.A.R page: the agents table over the modern API (/api/v1/agents).
// The DOM is built with createElement and textContent only: whatever an agent's fields hold is
// shown as text, never parsed as HTML.

const API = new URL("../api/v1/agents", document.baseURI);
const TOKEN_KEY = "roar.apiToken"; // sessionStorage: gone when the tab closes
const PAGE_SIZE = 50;
const RETRY_SECONDS = 5;
const FLAVOR = document.documentElement.dataset.flavor;

const FIELDS = {
  name: "Name",
  species: "Species",
  service_start: "Date of First Service",
  service_last: "Date of Last Service",
  adversary_name: "Adversary",
  adversary_tech: "Adversary Tech",
};
const REQUIRED = ["name", "species", "service_start"];
// The original's columns, in its order; v2 adds Years of Service.
const COLUMNS = [
  { key: "id", label: "Id", sortable: true, numeric: true },
  ...Object.entries(FIELDS).map(([key, label]) => ({ key, label, sortable: true })),
];
if (FLAVOR === "v2") {
  COLUMNS.push({ key: "years", label: "Years of Service", numeric: true, value: yearsOfService });
}

const state = { sortKey: "id", sortDir: "ascending", name: "", species: "", offset: 0 };
let loadSeq = 0;
let retryTimer = null;
let editing = null; // {id, etag} while the form edits an agent; null when it adds one

const $ = (id) => document.getElementById(id);

function el(tag, { text, className, attrs = {} } = {}, children = []) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

// ---- talking to the API ------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || `The server answered ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

async function request(method, url, { body, headers = {} } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token && method !== "GET") init.headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError(0, { detail: "The ROAR server cannot be reached." });
  }
  if (response.ok) {
    const data = response.status === 204 ? null : await response.json();
    return { data, etag: response.headers.get("ETag") };
  }
  let problem = null;
  try {
    problem = await response.json();
  } catch {
    // not problem+json (a proxy's error page, say): the status alone must do
  }
  throw new ApiError(response.status, problem);
}

// A write; on 401 ask for the token (once per refusal), keep it for this tab, and retry.
async function write(method, url, options) {
  for (;;) {
    try {
      return await request(method, url, options);
    } catch (err) {
      if (err.status !== 401) throw err;
      const refused = sessionStorage.getItem(TOKEN_KEY) !== null;
      sessionStorage.removeItem(TOKEN_KEY);
      const token = await askToken(refused);
      if (!token) throw err;
      sessionStorage.setItem(TOKEN_KEY, token);
    }
  }
}

function askToken(refused) {
  const dialog = $("token-dialog");
  const input = $("token-input");
  $("token-text").textContent = refused
    ? "That token was not accepted. Enter the registry's API token again."
    : "Changes to this registry need its API token. It is kept in this tab only, until you close it.";
  input.value = "";
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => resolve(dialog.returnValue === "ok" ? input.value.trim() : null),
      { once: true },
    );
    dialog.returnValue = "";
    dialog.showModal();
    input.focus();
  });
}

// ---- the table ---------------------------------------------------------------------------------

function listUrl() {
  const url = new URL(API);
  const first = `${state.sortDir === "descending" ? "-" : ""}${state.sortKey}`;
  url.searchParams.set("sort", state.sortKey === "id" ? first : `${first},id`);
  if (state.name) url.searchParams.set("name", state.name);
  if (state.species) url.searchParams.set("species", state.species);
  url.searchParams.set("limit", PAGE_SIZE);
  url.searchParams.set("offset", state.offset);
  return url;
}

async function load() {
  const seq = ++loadSeq;
  clearTimeout(retryTimer);
  $("agents").setAttribute("aria-busy", "true");
  try {
    const { data } = await request("GET", listUrl());
    if (seq !== loadSeq) return; // a newer load superseded this one
    if (!$("outage").hidden) refreshSpecies(); // back from an outage: the options are stale
    showOutage(null);
    renderRows(data);
  } catch (err) {
    if (seq !== loadSeq) return;
    showOutage(err);
  } finally {
    if (seq === loadSeq) $("agents").removeAttribute("aria-busy");
  }
}

function showOutage(err) {
  const panel = $("outage");
  $("table-wrap").hidden = Boolean(err);
  panel.hidden = !err;
  if (!err) return;
  const down = err.status === 503;
  $("outage-title").textContent = down
    ? "The registry's database is unavailable"
    : err.status === 0
      ? "The ROAR server cannot be reached"
      : "The agents could not be loaded";
  const retrying = down || err.status === 0;
  $("outage-detail").textContent = [
    down ? "No agents can be shown or changed until the database is back." : err.message,
    retrying ? `This page tries again every ${RETRY_SECONDS} seconds.` : "",
  ].join(" ");
  if (retrying) retryTimer = setTimeout(load, RETRY_SECONDS * 1000);
}

function buildHeader() {
  const row = document.querySelector("#agents thead tr");
  row.replaceChildren(
    ...COLUMNS.map((col) => {
      const th = el("th", { attrs: { scope: "col" }, className: col.numeric ? "num" : "" });
      if (!col.sortable) {
        th.textContent = col.label;
        return th;
      }
      const button = el("button", { className: "sort", attrs: { type: "button" } }, [
        el("span", { text: col.label }),
        el("span", { className: "sort-icon", attrs: { "aria-hidden": "true" } }),
      ]);
      button.dataset.key = col.key;
      button.addEventListener("click", () => {
        const again = state.sortKey === col.key;
        setSort(col.key, again && state.sortDir === "ascending" ? "descending" : "ascending");
      });
      th.append(button);
      return th;
    }),
    el("th", { attrs: { scope: "col" }, className: "actions-col" }, [
      el("span", { text: "Actions", className: "visually-hidden" }),
    ]),
  );
  const select = $("sort-select");
  for (const col of COLUMNS.filter((c) => c.sortable)) {
    for (const [dir, word] of [["ascending", "A–Z, 0–9"], ["descending", "Z–A, 9–0"]]) {
      select.append(el("option", { text: `${col.label} (${word})`, attrs: { value: `${col.key} ${dir}` } }));
    }
  }
  select.addEventListener("change", () => setSort(...select.value.split(" ")));
  showSort();
}

function setSort(key, dir) {
  state.sortKey = key;
  state.sortDir = dir;
  state.offset = 0;
  showSort();
  load();
}

function showSort() {
  for (const button of document.querySelectorAll("#agents thead button.sort")) {
    const th = button.parentElement;
    const active = button.dataset.key === state.sortKey;
    if (active) th.setAttribute("aria-sort", state.sortDir);
    else th.removeAttribute("aria-sort");
    button.querySelector(".sort-icon").textContent = active
      ? (state.sortDir === "ascending" ? "▲" : "▼")
      : "↕";
  }
  $("sort-select").value = `${state.sortKey} ${state.sortDir}`;
}

function cellText(col, agent) {
  const value = col.value ? col.value(agent) : agent[col.key];
  return value === null || value === undefined || value === "" ? "—" : String(value);
}

function renderRows(page) {
  const body = document.querySelector("#agents tbody");
  if (page.items.length === 0) {
    const filtered = state.name || state.species;
    body.replaceChildren(
      el("tr", {}, [
        el("td", {
          className: "placeholder",
          text: filtered ? "No agent matches this search." : "The registry has no agents yet.",
          attrs: { colspan: COLUMNS.length + 1 },
        }),
      ]),
    );
  } else {
    body.replaceChildren(...page.items.map(agentRow));
  }
  const shown = page.items.length;
  const first = page.offset + 1;
  $("agent-count").textContent =
    page.total === 0
      ? "No agents"
      : page.total <= shown
        ? `${page.total} ${page.total === 1 ? "agent" : "agents"}`
        : `Agents ${first}–${page.offset + shown} of ${page.total}`;
  $("pager").hidden = page.total <= PAGE_SIZE;
  $("prev-page").disabled = page.offset === 0;
  $("next-page").disabled = page.offset + shown >= page.total;
}

function agentRow(agent) {
  const row = el("tr");
  row.dataset.id = agent.id;
  for (const col of COLUMNS) {
    const text = cellText(col, agent);
    const cell = el(col.key === "name" ? "th" : "td", {
      text,
      className: [col.numeric ? "num" : "", text === "—" ? "empty" : ""].join(" ").trim(),
      attrs: col.key === "name" ? { scope: "row" } : {},
    });
    cell.dataset.label = col.label;
    cell.dataset.key = col.key;
    row.append(cell);
  }
  const edit = el("button", {
    text: "Edit",
    className: "button small",
    attrs: { type: "button", "aria-label": `Edit ${agent.name}` },
  });
  edit.addEventListener("click", () => editAgent(agent.id));
  const remove = el("button", {
    text: "Delete",
    className: "button small danger",
    attrs: { type: "button", "aria-label": `Delete ${agent.name}` },
  });
  remove.addEventListener("click", () => deleteAgent(agent));
  row.append(el("td", { className: "row-actions" }, [edit, remove]));
  return row;
}

// Whole years from first service to last service (or today, while still serving).
function yearsOfService(agent) {
  const [y0, m0, d0] = agent.service_start.split("-").map(Number);
  const now = new Date();
  const [y1, m1, d1] = agent.service_last
    ? agent.service_last.split("-").map(Number)
    : [now.getFullYear(), now.getMonth() + 1, now.getDate()];
  const years = y1 - y0 - (m1 < m0 || (m1 === m0 && d1 < d0) ? 1 : 0);
  return agent.service_last ? years : `${years} (serving)`;
}

async function refreshSpecies() {
  let items;
  try {
    ({ data: { items } } = await request("GET", `${API}?sort=species&limit=500`));
  } catch {
    return; // the table's own load reports outages
  }
  const seen = new Map();
  for (const { species } of items) {
    if (!seen.has(species.toLowerCase())) seen.set(species.toLowerCase(), species);
  }
  const names = [...seen.values()];
  const select = $("species-filter");
  const chosen = select.value;
  select.replaceChildren(
    el("option", { text: "All species", attrs: { value: "" } }),
    ...names.map((s) => el("option", { text: s, attrs: { value: s } })),
  );
  if (chosen && !seen.has(chosen.toLowerCase())) {
    select.append(el("option", { text: chosen, attrs: { value: chosen } }));
  }
  select.value = chosen;
  $("species-list").replaceChildren(...names.map((s) => el("option", { attrs: { value: s } })));
}

function announce(message, kind = "info") {
  const notice = $("notice");
  notice.className = `notice ${kind}`;
  notice.textContent = message;
}

// ---- add, edit, delete -------------------------------------------------------------------------

const form = $("agent-form");
const formDialog = $("agent-dialog");

function openForm(agent = null, etag = null) {
  editing = agent ? { id: agent.id, etag, name: agent.name } : null;
  $("agent-dialog-title").textContent = agent ? `Edit agent ${agent.name}` : "Add an agent";
  $("save-agent").textContent = agent ? "Save changes" : "Add agent";
  for (const key of Object.keys(FIELDS)) form.elements[key].value = agent?.[key] ?? "";
  clearErrors();
  if (!formDialog.open) formDialog.showModal();
  form.elements.name.focus();
}

async function editAgent(id) {
  try {
    const { data, etag } = await request("GET", `${API}/${id}`);
    openForm(data, etag);
  } catch (err) {
    announce(failureText(err, "This agent cannot be opened"), "error");
    if (err.status === 404) load();
  }
}

// Empty optional fields are sent as null; empty required ones are left out, so the API
// answers "is required" for them.
function readForm() {
  const body = {};
  for (const key of Object.keys(FIELDS)) {
    const value = form.elements[key].value.trim();
    if (value !== "") body[key] = value;
    else if (!REQUIRED.includes(key)) body[key] = null;
  }
  return body;
}

function clearErrors() {
  $("form-error").hidden = true;
  $("form-error").replaceChildren();
  for (const key of Object.keys(FIELDS)) {
    form.elements[key].removeAttribute("aria-invalid");
    const note = $(`f-${key}-error`);
    note.hidden = true;
    note.textContent = "";
  }
}

// The API names fields by their wire names; a person reads the labels.
function humanize(message) {
  let text = message;
  for (const [key, label] of Object.entries(FIELDS)) text = text.replaceAll(key, label);
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function showFormError(err) {
  const fieldErrors = (err.problem.errors || []).filter((e) => e.field in FIELDS);
  for (const { field, message } of fieldErrors) {
    const note = $(`f-${field}-error`);
    note.textContent = note.textContent ? `${note.textContent} ${humanize(message)}.` : `${humanize(message)}.`;
    note.hidden = false;
    form.elements[field].setAttribute("aria-invalid", "true");
  }
  if (fieldErrors.length) {
    form.elements[fieldErrors[0].field].focus();
    const others = (err.problem.errors || []).filter((e) => !(e.field in FIELDS));
    if (!others.length) return;
  }
  const box = $("form-error");
  if (err.status === 412) {
    const reload = el("button", { text: "Reload agent", className: "button small", attrs: { type: "button" } });
    reload.addEventListener("click", () => editAgent(editing.id));
    box.replaceChildren(
      el("span", { text: "Someone else changed this agent since you opened it; reload it to see their change. " }),
      reload,
    );
  } else {
    box.replaceChildren(el("span", { text: failureText(err, "Not saved") }));
  }
  box.hidden = false;
}

function failureText(err, what) {
  if (err.status === 401) return `${what}: changes to this registry need its API token.`;
  if (err.status === 503) return `${what}: the database is unavailable; try again shortly.`;
  if (err.status === 404) return `${what}: this agent no longer exists.`;
  if (err.status === 412) return `${what}: someone else changed this agent; reload and try again.`;
  return `${what}: ${err.message}`;
}

async function submitForm(event) {
  event.preventDefault();
  const body = readForm();
  const save = $("save-agent");
  clearErrors();
  save.disabled = true;
  try {
    if (editing) {
      await write("PUT", `${API}/${editing.id}`, { body, headers: { "If-Match": editing.etag } });
      announce(`Saved the changes to ${body.name}.`);
    } else {
      const { data } = await write("POST", API, { body });
      announce(`Added ${data.name} (Id ${data.id}).`);
    }
    formDialog.close();
    await Promise.all([load(), refreshSpecies()]);
  } catch (err) {
    showFormError(err);
  } finally {
    save.disabled = false;
  }
}

function confirmDelete(agent) {
  const dialog = $("confirm-dialog");
  $("confirm-title").textContent = `Delete ${agent.name}?`;
  $("confirm-text").textContent =
    `Agent ${agent.name} (Id ${agent.id}, ${agent.species}) will be removed from the registry. This cannot be undone.`;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "delete"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

async function deleteAgent(agent) {
  if (!(await confirmDelete(agent))) return;
  try {
    await write("DELETE", `${API}/${agent.id}`, { headers: { "If-Match": `"${agent.version}"` } });
    announce(`Deleted ${agent.name}.`);
  } catch (err) {
    announce(failureText(err, `${agent.name} was not deleted`), "error");
  }
  await Promise.all([load(), refreshSpecies()]);
}

// ---- wiring ------------------------------------------------------------------------------------

function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

function start() {
  buildHeader();
  $("search").addEventListener(
    "input",
    debounce(() => {
      state.name = $("search").value.trim();
      state.offset = 0;
      load();
    }, 250),
  );
  $("species-filter").addEventListener("change", () => {
    state.species = $("species-filter").value;
    state.offset = 0;
    load();
  });
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  $("add-agent").addEventListener("click", () => openForm());
  $("retry").addEventListener("click", () => {
    load();
    refreshSpecies();
  });
  $("prev-page").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE_SIZE);
    load();
  });
  $("next-page").addEventListener("click", () => {
    state.offset += PAGE_SIZE;
    load();
  });
  form.addEventListener("submit", submitForm);
  form.querySelector("[data-close]").addEventListener("click", () => formDialog.close());
  load();
  refreshSpecies();
}

start();
