// Template editing (admin): the list, a form per template (channel, declared variables,
// subject and body per language), save with the server's exact error paths, and a
// preview rendered by the server for a real customer picked by search — the sender's
// own sandboxed renderer, so the preview is what that customer would get. The rendered
// text (and an e-mail's HTML source) is shown as text, never as markup.

import { api, qs } from "./api.js";
import { el, errorItems, when } from "./dom.js";

const LANGUAGES = ["uk", "ru", "en"];
const PREVIEW_DELAY_MS = 400;
let current = null; // {name, version} or {name, version: 0} for a new one
let customer = null; // {id, name} the preview renders for
let previewTimer = null;
let previewSeq = 0;

const node = (id) => document.getElementById(id);

function edited() {
  const channel = node("tpl-channel").value;
  const body = {};
  const subject = {};
  for (const lang of LANGUAGES) {
    const text = node(`tpl-body-${lang}`).value;
    if (text.trim()) body[lang] = text;
    const subj = node(`tpl-subject-${lang}`).value;
    if (channel === "email" && subj.trim()) subject[lang] = subj;
  }
  const variables = node("tpl-variables").value.split(",").map((v) => v.trim()).filter(Boolean);
  return { channel, subject, body, variables };
}

function variableInputs() {
  const box = node("tpl-values");
  const values = Object.fromEntries([...box.querySelectorAll("input")].map((i) => [i.name, i.value]));
  box.replaceChildren(...edited().variables.map((name) => el("label", {}, name,
    el("input", { name, class: "tpl-value", value: values[name] ?? "", oninput: schedulePreview }))));
}

function showSubjects() {
  const email = node("tpl-channel").value === "email";
  for (const lang of LANGUAGES) node(`tpl-subject-${lang}`).closest("label").hidden = !email;
}

async function renderPreview() {
  const seq = ++previewSeq;
  const out = node("tpl-preview");
  const errors = node("tpl-preview-errors");
  if (!current || !customer) return;
  const values = Object.fromEntries([...node("tpl-values").querySelectorAll("input")]
    .filter((i) => i.value !== "").map((i) => [i.name, i.value]));
  try {
    const result = await api("POST", `/api/templates/${encodeURIComponent(current.name)}/preview`,
      { customer_id: customer.id, template: edited(), variables: values });
    if (seq !== previewSeq) return;
    errors.replaceChildren();
    const parts = [
      el("p", { class: "hint" }, `For ${result.customer_name} (${result.customer_id}), in ${result.language}:`),
      result.subject !== null ? el("p", {}, "Subject: ", el("strong", { id: "tpl-rendered-subject" }, result.subject)) : null,
      el("pre", { id: "tpl-rendered", class: "rendered" }, result.text),
      result.html !== null ? el("details", {}, el("summary", {}, "HTML source"), el("pre", { class: "rendered" }, result.html)) : null,
    ];
    out.replaceChildren(...parts.filter(Boolean));
  } catch (error) {
    if (seq !== previewSeq) return;
    out.replaceChildren();
    errors.replaceChildren(...errorItems(error));
  }
}

function schedulePreview() {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(renderPreview, PREVIEW_DELAY_MS);
}

function show(template) {
  current = { name: template.name, version: template.version };
  node("tpl-editor").hidden = false;
  node("tpl-title").textContent = template.version ? `${template.name} — version ${template.version}` : `${template.name} (new)`;
  node("tpl-channel").value = template.channel;
  node("tpl-variables").value = (template.variables || []).join(", ");
  for (const lang of LANGUAGES) {
    node(`tpl-body-${lang}`).value = template.body?.[lang] ?? "";
    node(`tpl-subject-${lang}`).value = template.subject?.[lang] ?? "";
  }
  node("tpl-errors").replaceChildren();
  showSubjects();
  variableInputs();
  schedulePreview();
}

async function open(name) {
  node("tpl-status").textContent = "";
  try {
    show(await api("GET", `/api/templates/${encodeURIComponent(name)}`));
  } catch (error) {
    node("tpl-status").textContent = error.message;
  }
}

async function save(event) {
  event.preventDefault();
  node("tpl-errors").replaceChildren();
  try {
    const saved = await api("PUT", `/api/templates/${encodeURIComponent(current.name)}`, edited());
    show(saved);
    node("tpl-status").textContent = `Saved as version ${saved.version}.`;
    loadTemplates();
  } catch (error) {
    node("tpl-errors").replaceChildren(...errorItems(error));
  }
}

async function findCustomers(event) {
  event.preventDefault();
  const query = node("tpl-customer-query").value.trim();
  const list = node("tpl-customers");
  const byPhone = /^[+\d\s()\-.]{5,}$/.test(query);
  try {
    const page = await api("GET", `/api/customers${qs(byPhone ? { phone: query } : { q: query })}`);
    list.replaceChildren(...page.items.map((c) => el("li", {},
      el("button", { type: "button", class: "link pick-customer", dataset: { id: c.id }, onclick: () => {
        customer = { id: c.id, name: c.name };
        node("tpl-customer").textContent = `${c.name} (${c.id})`;
        list.replaceChildren();
        renderPreview();
      } }, c.name), ` · ${c.status}`)));
    if (!page.items.length) list.replaceChildren(el("li", { class: "hint" }, "No customer found."));
  } catch (error) {
    list.replaceChildren(el("li", { class: "error" }, error.message));
  }
}

/** The template list. */
export async function loadTemplates() {
  try {
    const { items } = await api("GET", "/api/templates?limit=500");
    node("templates").replaceChildren(...items.map((t) => el("tr", { dataset: { name: t.name } },
      el("td", {}, el("button", { type: "button", class: "link open-template", onclick: () => open(t.name) }, t.name)),
      el("td", {}, t.channel),
      el("td", {}, t.version),
      el("td", {}, Object.keys(t.body).join(", ")),
      el("td", {}, when(t.updated_at)))));
  } catch (error) {
    node("tpl-status").textContent = error.message;
  }
}

/** Wire the forms once. */
export function initTemplates() {
  node("tpl-form").addEventListener("submit", save);
  node("tpl-find").addEventListener("submit", findCustomers);
  node("tpl-new").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = node("tpl-new-name").value.trim();
    if (name) show({ name, version: 0, channel: "sms", body: {}, subject: {}, variables: [] });
  });
  node("tpl-form").addEventListener("input", (event) => {
    if (event.target.id === "tpl-variables") variableInputs();
    if (!event.target.classList.contains("tpl-value")) schedulePreview();
  });
  node("tpl-channel").addEventListener("change", showSubjects);
}

/** Forget everything (sign-out). */
export function clearTemplates() {
  current = null;
  customer = null;
  clearTimeout(previewTimer);
  node("tpl-editor").hidden = true;
  node("templates").replaceChildren();
  node("tpl-status").textContent = "";
  node("tpl-customer").textContent = "nobody yet";
  node("tpl-preview").replaceChildren();
}
