// The campaign editor (admin): list, open, a form-built audience rule (all/any groups,
// a not toggle per row, field/operator/value rows from /api/rules/fields — no code typed),
// the steps as a read-only sequence, save with the server's exact error paths, the
// versions with rollback. The preview endpoint dry-runs the SAVED version only, so the
// audience count and cost shown are those of the current version, refreshed after a save.

import { api, ApiError } from "./api.js";
import { el, when } from "./dom.js";

let fields = [];
let current = null; // {name, version, definition}
let tree = null; // the audience being edited

const node = (id) => document.getElementById(id);
const baseName = (name) => name.split(".")[0];

function spec(fieldName) {
  return fields.find((f) => baseName(f.name) === baseName(fieldName || ""));
}

// --- the rule tree: groups {mode, negated, items} and conditions {field, param, op, value}

function parseRule(raw) {
  if (raw && "not" in raw) {
    const inner = parseRule(raw.not);
    if (inner.negated) return { kind: "group", mode: "all", negated: true, items: [inner] };
    return { ...inner, negated: true };
  }
  if (raw && ("all" in raw || "any" in raw)) {
    const mode = "all" in raw ? "all" : "any";
    return { kind: "group", mode, negated: false, items: (raw[mode] || []).map(parseRule) };
  }
  const [field, ...rest] = String(raw?.field ?? "").split(".");
  return { kind: "cond", negated: false, field, param: rest.join("."), op: raw?.op ?? "==", value: raw?.value };
}

function parseValue(text, type) {
  const trimmed = String(text).trim();
  if (["integer", "decimal", "json"].includes(type) && trimmed !== "" && !Number.isNaN(Number(trimmed))) {
    return type === "decimal" ? trimmed : Number(trimmed);
  }
  if (type === "json" && (trimmed === "true" || trimmed === "false")) return trimmed === "true";
  return trimmed;
}

function valueOut(cond) {
  const type = spec(cond.field)?.type;
  if (cond.op === "exists") return cond.value === false || cond.value === "false" ? false : true;
  if (cond.op === "in" || cond.op === "not_in") {
    const list = Array.isArray(cond.value) ? cond.value : String(cond.value ?? "").split(",");
    return list.map((item) => parseValue(item, type)).filter((item) => item !== "");
  }
  return parseValue(cond.value ?? "", type);
}

/** The edited rule as the API's JSON. */
export function ruleOut(item) {
  let raw;
  if (item.kind === "group") raw = { [item.mode]: item.items.map(ruleOut) };
  else {
    const field = item.param ? `${item.field}.${item.param}` : spec(item.field)?.parameter ? `${item.field}.` : item.field;
    raw = { field, op: item.op, value: valueOut(item) };
  }
  return item.negated ? { not: raw } : raw;
}

// --- rendering the builder

function rerender() {
  node("audience-builder").replaceChildren(renderGroup(tree, null));
}

function notToggle(item) {
  return el("label", { class: "not" },
    el("input", { type: "checkbox", class: "negate", checked: item.negated, onchange: (e) => { item.negated = e.target.checked; } }),
    "not");
}

function removeButton(parent, item) {
  if (!parent) return null;
  return el("button", { type: "button", class: "secondary remove", onclick: () => {
    parent.items.splice(parent.items.indexOf(item), 1);
    rerender();
  } }, "Remove");
}

function renderGroup(group, parent) {
  const mode = el("select", { class: "mode", "aria-label": "Match", onchange: (e) => { group.mode = e.target.value; } },
    el("option", { value: "all", selected: group.mode === "all" }, "all of"),
    el("option", { value: "any", selected: group.mode === "any" }, "any of"));
  return el("fieldset", { class: "group" },
    el("legend", {}, notToggle(group), " match ", mode, " these"),
    el("ol", { class: "rows" }, group.items.map((item) => el("li", {},
      item.kind === "group" ? renderGroup(item, group) : renderCondition(item, group)))),
    el("div", { class: "actions" },
      el("button", { type: "button", class: "secondary add-condition", onclick: () => {
        group.items.push({ kind: "cond", negated: false, field: fields[0]?.name ?? "status", param: "", op: "==", value: "" });
        rerender();
      } }, "Add condition"),
      el("button", { type: "button", class: "secondary add-group", onclick: () => {
        group.items.push({ kind: "group", mode: "any", negated: false, items: [] });
        rerender();
      } }, "Add group"),
      removeButton(parent, group)));
}

function valueInput(cond, field) {
  const set = (e) => { cond.value = e.target.value; };
  if (cond.op === "exists") {
    return el("select", { class: "value", "aria-label": "Value", onchange: set },
      el("option", { value: "true", selected: cond.value !== false && cond.value !== "false" }, "yes"),
      el("option", { value: "false", selected: cond.value === false || cond.value === "false" }, "no"));
  }
  const multi = cond.op === "in" || cond.op === "not_in";
  const text = Array.isArray(cond.value) ? cond.value.join(", ") : cond.value ?? "";
  if (field?.choices?.length && !multi) {
    return el("select", { class: "value", "aria-label": "Value", onchange: set },
      field.choices.map((choice) => el("option", { value: choice, selected: choice === text }, choice)));
  }
  const hint = multi ? "values, comma separated" : field?.unit ? `${field.type} (${field.unit})` : field?.type;
  return el("input", { class: "value", "aria-label": "Value", value: String(text), placeholder: hint, oninput: set });
}

function renderCondition(cond, parent) {
  const field = spec(cond.field);
  if (field?.choices?.length && cond.op !== "exists" && (cond.value === "" || cond.value === undefined)) {
    cond.value = field.choices[0];
  }
  const fieldSelect = el("select", { class: "field", "aria-label": "Field", onchange: (e) => {
    cond.field = e.target.value;
    cond.param = "";
    const next = spec(cond.field);
    if (!next.ops.includes(cond.op)) cond.op = next.ops[0];
    cond.value = "";
    rerender();
  } }, fields.map((f) => el("option", { value: baseName(f.name), selected: baseName(f.name) === cond.field, title: f.description }, f.name)));
  let param = null;
  if (field?.parameter) {
    const setParam = (e) => { cond.param = e.target.value; };
    param = field.parameter_choices.length
      ? el("select", { class: "param", "aria-label": field.parameter, onchange: setParam },
        el("option", { value: "" }, `— ${field.parameter} —`),
        field.parameter_choices.map((c) => el("option", { value: c, selected: c === cond.param }, c)))
      : el("input", { class: "param", "aria-label": field.parameter, placeholder: field.parameter, value: cond.param, oninput: setParam });
  }
  const ops = field?.ops ?? [cond.op];
  const opSelect = el("select", { class: "op", "aria-label": "Operator", onchange: (e) => {
    cond.op = e.target.value;
    rerender();
  } }, ops.map((op) => el("option", { value: op, selected: op === cond.op }, op)));
  return el("div", { class: "condition" }, notToggle(cond), fieldSelect, param, opSelect, valueInput(cond, field),
    removeButton(parent, cond));
}

// --- steps, preview, versions

function describeStep(step) {
  if (step.type === "send") return `send ${step.channel} “${step.template}”`;
  if (step.type === "call_task") return `call task${step.topic ? ` about ${step.topic}` : ""}`;
  if (step.type === "wait") {
    const until = step.until?.length ? ` until ${step.until.join(" or ")}` : "";
    return `wait${until}${step.timeout ? `, at most ${step.timeout}` : ""}${step.duration ? ` ${step.duration}` : ""}`;
  }
  if (step.type === "branch") {
    const cases = (step.cases || []).map((c) => `if ${c.outcome ?? JSON.stringify(c.when)} → ${c.goto}`);
    return `branch: ${[...cases, `otherwise → ${step.otherwise ?? "next"}`].join("; ")}`;
  }
  return step.type ?? "step";
}

function stepList(steps) {
  return el("ol", { class: "steps" }, steps.map((step) => el("li", {}, el("code", {}, step.id), " ", describeStep(step))));
}

function renderSteps(definition) {
  const box = node("editor-steps");
  const parts = [];
  if (definition.steps?.length) parts.push(stepList(definition.steps));
  if (definition.experiment) {
    parts.push(el("p", {}, `Experiment: holdout ${definition.experiment.holdout ?? 0}`));
    for (const arm of definition.experiment.arms || []) {
      parts.push(el("h4", {}, `Arm ${arm.name} (weight ${arm.weight})`), stepList(arm.steps || []));
    }
  }
  box.replaceChildren(...(parts.length ? parts : [el("p", { class: "hint" }, "No steps.")]));
}

async function loadPreview() {
  const box = node("editor-preview");
  box.textContent = "Counting…";
  try {
    const result = await api("POST", `/api/campaigns/${encodeURIComponent(current.name)}/preview`, {});
    box.replaceChildren(
      el("p", {}, "Audience: ", el("strong", { id: "audience-count" }, result.count), " customers; estimated cost ",
        el("strong", { id: "audience-cost" }, `${result.estimated_cost} ${result.currency}`),
        ` (version ${result.version}, holdout ${result.holdout}).`),
      el("ul", { class: "sample" }, result.sample.map((c) => el("li", {}, c.name || c.id, c.arm ? ` (${c.arm})` : ""))),
    );
  } catch (error) {
    box.replaceChildren(el("p", { class: "error" }, error.message));
  }
}

async function loadVersions() {
  const { items } = await api("GET", `/api/campaigns/${encodeURIComponent(current.name)}/versions`);
  node("editor-versions").replaceChildren(...items.map((v) => el("tr", { dataset: { version: v.version } },
    el("td", {}, v.version, v.current ? " (current)" : ""),
    el("td", {}, when(v.created_at)),
    el("td", {}, v.created_by ?? ""),
    el("td", {}, v.current ? "" : el("button", { type: "button", class: "secondary rollback", onclick: () => rollback(v.version) }, "Roll back")))));
}

async function rollback(version) {
  try {
    const saved = await api("POST", `/api/campaigns/${encodeURIComponent(current.name)}/rollback`, { version });
    show(saved);
    node("editor-status").textContent = `Rolled back: version ${saved.version} restores version ${version}.`;
  } catch (error) {
    node("editor-status").textContent = error.message;
  }
}

function show(campaign) {
  current = { name: campaign.name, version: campaign.version, definition: campaign.definition };
  tree = parseRule(campaign.definition.audience);
  if (tree.kind !== "group") tree = { kind: "group", mode: "all", negated: false, items: [tree] };
  node("editor").hidden = false;
  node("editor-title").textContent = `${campaign.name} — version ${campaign.version}`;
  node("editor-description").value = campaign.definition.description ?? "";
  node("editor-errors").replaceChildren();
  rerender();
  renderSteps(campaign.definition);
  loadPreview();
  loadVersions();
}

async function open(name) {
  node("editor-status").textContent = "";
  try {
    show(await api("GET", `/api/campaigns/${encodeURIComponent(name)}`));
  } catch (error) {
    node("editor-status").textContent = error.message;
  }
}

async function save(event) {
  event.preventDefault();
  const errors = node("editor-errors");
  errors.replaceChildren();
  const definition = { ...current.definition, description: node("editor-description").value, audience: ruleOut(tree) };
  try {
    const saved = await api("PUT", `/api/campaigns/${encodeURIComponent(current.name)}`, definition);
    show(saved);
    node("editor-status").textContent = saved.new_version === false ? "No change: nothing saved." : `Saved as version ${saved.version}.`;
    loadCampaigns();
  } catch (error) {
    const items = error instanceof ApiError ? error.problem.errors || [] : [];
    errors.replaceChildren(...(items.length
      ? items.map((item) => el("li", {}, el("code", { class: "path" }, item.field), ": ", item.message))
      : [el("li", {}, error.message)]));
  }
}

/** The campaign list (and the field catalogue, once). */
export async function loadCampaigns() {
  try {
    if (!fields.length) fields = (await api("GET", "/api/rules/fields")).items;
    const { items } = await api("GET", "/api/campaigns");
    node("campaigns").replaceChildren(...items.map((c) => el("tr", { dataset: { name: c.name } },
      el("td", {}, el("button", { type: "button", class: "link open-campaign", onclick: () => open(c.name) }, c.name)),
      el("td", {}, c.description),
      el("td", {}, c.current_version),
      el("td", {}, c.enabled ? "on" : "off"),
      el("td", {}, when(c.next_run_at)))));
  } catch (error) {
    node("editor-status").textContent = error.message;
  }
}

/** Wire the form once. */
export function initEditor() {
  node("editor-form").addEventListener("submit", save);
  node("editor-refresh").addEventListener("click", () => current && loadPreview());
}

/** Forget the open campaign (sign-out). */
export function clearEditor() {
  current = null;
  tree = null;
  node("editor").hidden = true;
  node("campaigns").replaceChildren();
  node("editor-status").textContent = "";
}
