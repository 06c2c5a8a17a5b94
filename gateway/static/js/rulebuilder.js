// The form-built condition builder shared by the campaign editor (audience, branch rules)
// and the partners page (eligibility): all/any groups, a "not" toggle per row, and
// field/operator/value rows from /api/rules/fields — nobody types code. One component,
// mounted in as many places as needed; each mount owns its tree and tells its owner of
// every change through `onChange`.

import { api } from "./api.js";
import { el } from "./dom.js";

let fieldsPromise = null;

/** The rule field catalogue (fetched once per page; forgotten on sign-out). */
export function loadFields() {
  if (!fieldsPromise) {
    fieldsPromise = api("GET", "/api/rules/fields").then(({ items }) => items, (error) => {
      fieldsPromise = null;
      throw error;
    });
  }
  return fieldsPromise;
}

/** Forget the catalogue (the next admin may be on another gateway version). */
export function forgetFields() {
  fieldsPromise = null;
}

const baseName = (name) => name.split(".")[0];

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

/**
 * Mount a builder in `container` for the rule `raw` (null or {} → an empty "all of" group).
 * Returns {value(): the rule as the API's JSON ({} when empty and `emptyMeansAnyone`)}.
 */
export function ruleBuilder(container, fields, raw, { onChange = () => {}, emptyMeansAnyone = false } = {}) {
  const spec = (fieldName) => fields.find((f) => baseName(f.name) === baseName(fieldName || ""));
  let tree = raw && Object.keys(raw).length ? parseRule(raw) : { kind: "group", mode: "all", negated: false, items: [] };
  if (tree.kind !== "group") tree = { kind: "group", mode: "all", negated: false, items: [tree] };

  const changed = () => onChange();
  const rerender = () => {
    container.replaceChildren(renderGroup(tree, null));
    changed();
  };

  function valueOut(cond) {
    const type = spec(cond.field)?.type;
    if (cond.op === "exists") return !(cond.value === false || cond.value === "false");
    if (cond.op === "in" || cond.op === "not_in") {
      const list = Array.isArray(cond.value) ? cond.value : String(cond.value ?? "").split(",");
      return list.map((item) => parseValue(item, type)).filter((item) => item !== "");
    }
    return parseValue(cond.value ?? "", type);
  }

  function ruleOut(item) {
    let out;
    if (item.kind === "group") out = { [item.mode]: item.items.map(ruleOut) };
    else {
      const field = item.param ? `${item.field}.${item.param}` : spec(item.field)?.parameter ? `${item.field}.` : item.field;
      out = { field, op: item.op, value: valueOut(item) };
    }
    return item.negated ? { not: out } : out;
  }

  function notToggle(item) {
    return el("label", { class: "not" },
      el("input", { type: "checkbox", class: "negate", checked: item.negated, onchange: (e) => { item.negated = e.target.checked; changed(); } }),
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
    const mode = el("select", { class: "mode", "aria-label": "Match", onchange: (e) => { group.mode = e.target.value; changed(); } },
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
    const set = (e) => { cond.value = e.target.value; changed(); };
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
      const setParam = (e) => { cond.param = e.target.value; changed(); };
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

  container.replaceChildren(renderGroup(tree, null));
  return {
    value() {
      if (emptyMeansAnyone && !tree.negated && tree.items.length === 0) return {};
      return ruleOut(tree);
    },
  };
}
