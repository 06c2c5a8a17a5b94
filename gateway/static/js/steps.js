// The step editor of a journey: the steps as a visible, numbered sequence (send, call task,
// wait, branch, status move, CRM action) with add, remove and reorder; waits, channels,
// templates and branch targets edited in place; branch rules built with the shared form
// builder. Steps stay plain JSON objects (unknown keys such as a CRM action's `data` are
// kept as they were); the server validates, and its messages are shown on the step
// they name.

import { el } from "./dom.js";
import { ruleBuilder } from "./rulebuilder.js";

export const STEP_TYPES = ["send", "call_task", "wait", "branch", "set_status", "crm_action"];
const CHANNELS = ["sms", "email", "voice"];
const WAIT_EVENTS = ["replied", "activity", "order", "call_answered", "delivered"];
const OUTCOMES = [...WAIT_EVENTS, "timeout"];
const TASK_KINDS = ["call", "monitoring", "recovery_call"];
const STATUSES = ["active", "warm", "cold", "lost"];
const END = "end";

const NEW_STEP = {
  send: () => ({ type: "send", channel: "sms", template: "" }),
  call_task: () => ({ type: "call_task", kind: "call", min_call_seconds: 20, due_in: "3d" }),
  wait: () => ({ type: "wait", duration: "1d" }),
  branch: () => ({ type: "branch", cases: [{ outcome: "replied", goto: END }], otherwise: END }),
  set_status: () => ({ type: "set_status", status: "active" }),
  crm_action: () => ({ type: "crm_action", action: "contract.cancel_requested" }),
};

function options(values, selected, label = (v) => v) {
  return values.map((v) => el("option", { value: v, selected: v === selected }, label(v)));
}

/** A labelled control; `cls` names it for tests and styling. */
function field(text, control) {
  return el("label", { class: "step-field" }, text, " ", control);
}

/**
 * Mount an editor for `steps` (a journey) in `container`.
 * Returns {value(): the steps as JSON, showErrors([{index, path, message}]), clearErrors()}.
 */
export function stepsEditor(container, fields, steps, { onChange = () => {}, templates = [] } = {}) {
  const items = structuredClone(steps || []);
  const rules = new Map(); // branch case → its mounted rule builder
  const changed = () => onChange();

  function syncRules() {
    for (const [branchCase, builder] of rules) branchCase.when = builder.value();
  }

  function rerender() {
    syncRules();
    rules.clear();
    render();
    changed();
  }

  const text = (step, key, attrs = {}) => el("input", { class: key.replace("_", "-"), value: step[key] ?? "", ...attrs, oninput: (e) => {
    const value = e.target.value.trim();
    if (value === "") delete step[key];
    else step[key] = attrs.type === "number" && !Number.isNaN(Number(value)) ? Number(value) : value;
    changed();
  } });

  const choose = (step, key, values) => el("select", { class: key.replace("_", "-"), "aria-label": key, onchange: (e) => {
    step[key] = e.target.value;
    changed();
  } }, options(values, step[key]));

  function targets(current, self) {
    const ids = items.map((s) => s.id).filter((id) => id && id !== self.id);
    const all = [...ids, END];
    if (current && !all.includes(current)) all.unshift(current); // dangling: the server says so
    return all;
  }

  function gotoSelect(holder, key, self) {
    return el("select", { class: key, "aria-label": key === "otherwise" ? "Otherwise go to" : "Go to", onchange: (e) => {
      holder[key] = e.target.value;
      changed();
    } }, options(targets(holder[key] ?? END, self), holder[key] ?? END, (v) => (v === END ? "end" : v)));
  }

  function sendBody(step) {
    const list = `templates-${Math.random().toString(36).slice(2)}`;
    return [
      field("channel", choose(step, "channel", CHANNELS)),
      field("template", text(step, "template", { list, placeholder: "template name" })),
      el("datalist", { id: list }, templates.map((name) => el("option", { value: name }))),
    ];
  }

  function callTaskBody(step) {
    return [
      field("kind", choose(step, "kind", TASK_KINDS)),
      field("assignee", text(step, "assignee", { placeholder: "responsible_agent" })),
      field("min call seconds", text(step, "min_call_seconds", { type: "number", min: 0 })),
      field("due in", text(step, "due_in", { placeholder: "3d" })),
    ];
  }

  function waitBody(step) {
    const untilMode = Array.isArray(step.until) && step.until.length > 0 || step.duration === undefined && "timeout" in step;
    const mode = el("select", { class: "wait-mode", "aria-label": "Wait mode", onchange: (e) => {
      if (e.target.value === "until") {
        delete step.duration;
        step.until = ["replied"];
        step.timeout = step.timeout ?? "3d";
      } else {
        delete step.until;
        delete step.timeout;
        step.duration = "1d";
      }
      rerender();
    } }, el("option", { value: "for", selected: !untilMode }, "for a time"),
    el("option", { value: "until", selected: untilMode }, "until an event"));
    if (!untilMode) return [field("wait", mode), field("duration", text(step, "duration", { placeholder: "3d, 12h, 45m, 2w" }))];
    const events = el("span", { class: "until" }, WAIT_EVENTS.map((name) => el("label", { class: "event" },
      el("input", { type: "checkbox", value: name, checked: (step.until || []).includes(name), onchange: (e) => {
        const chosen = new Set(step.until || []);
        if (e.target.checked) chosen.add(name);
        else chosen.delete(name);
        step.until = WAIT_EVENTS.filter((n) => chosen.has(n));
        changed();
      } }), name)));
    return [field("wait", mode), events, field("at most", text(step, "timeout", { placeholder: "3d" }))];
  }

  function caseRow(step, branchCase, number) {
    const byRule = branchCase.when !== undefined && branchCase.outcome === undefined;
    const kind = el("select", { class: "case-kind", "aria-label": "Case on", onchange: (e) => {
      if (e.target.value === "rule") {
        delete branchCase.outcome;
        branchCase.when = {};
      } else {
        delete branchCase.when;
        branchCase.outcome = "replied";
      }
      rerender();
    } }, el("option", { value: "outcome", selected: !byRule }, "the wait ended with"),
    el("option", { value: "rule", selected: byRule }, "the customer matches"));
    let condition;
    if (byRule) {
      condition = el("div", { class: "case-rule" });
      rules.set(branchCase, ruleBuilder(condition, fields, branchCase.when, { onChange: changed }));
    } else {
      condition = choose(branchCase, "outcome", OUTCOMES);
    }
    return el("li", { class: "case" }, `${number + 1}. if `, kind, " ", condition, " → ", gotoSelect(branchCase, "goto", step),
      el("button", { type: "button", class: "secondary remove-case", onclick: () => {
        step.cases.splice(number, 1);
        rerender();
      } }, "Remove case"));
  }

  function branchBody(step) {
    step.cases = step.cases || [];
    return [
      el("ol", { class: "cases" }, step.cases.map((c, n) => caseRow(step, c, n))),
      el("div", { class: "actions" },
        el("button", { type: "button", class: "secondary add-case", onclick: () => {
          step.cases.push({ outcome: "replied", goto: END });
          rerender();
        } }, "Add case"),
        field("otherwise →", gotoSelect(step, "otherwise", step))),
    ];
  }

  const BODY = {
    send: sendBody,
    call_task: callTaskBody,
    wait: waitBody,
    branch: branchBody,
    set_status: (step) => [field("status", choose(step, "status", STATUSES))],
    crm_action: (step) => [field("action", text(step, "action", { placeholder: "contract.cancel_requested" }))],
  };

  function rename(step, input) {
    const before = step.id;
    const after = input.value.trim();
    if (before === after) return;
    step.id = after;
    // Branches that pointed at the old id follow the rename.
    for (const other of items.filter((s) => s.type === "branch")) {
      for (const c of other.cases || []) if (c.goto === before) c.goto = after;
      if (other.otherwise === before) other.otherwise = after;
    }
    rerender();
  }

  function move(index, by) {
    const [step] = items.splice(index, 1);
    items.splice(index + by, 0, step);
    rerender();
  }

  function stepRow(step, index) {
    const body = (BODY[step.type] || (() => [el("code", {}, JSON.stringify(step))]))(step);
    return el("li", { class: "step", dataset: { id: step.id ?? "", type: step.type } },
      el("div", { class: "step-head" },
        el("input", { class: "step-id", "aria-label": "Step id", value: step.id ?? "", onchange: (e) => rename(step, e.target) }),
        el("span", { class: "pill step-type" }, step.type.replace("_", " ")),
        el("span", { class: "spacer" }),
        el("button", { type: "button", class: "secondary move-up", disabled: index === 0, onclick: () => move(index, -1) }, "↑ Up"),
        el("button", { type: "button", class: "secondary move-down", disabled: index === items.length - 1, onclick: () => move(index, 1) }, "↓ Down"),
        el("button", { type: "button", class: "secondary remove-step", onclick: () => {
          items.splice(index, 1);
          rerender();
        } }, "Remove")),
      el("div", { class: "step-body" }, body),
      el("ul", { class: "step-errors error" }),
      step.type !== "branch" && index < items.length - 1 ? el("span", { class: "then hint" }, "then ↓") : null);
  }

  function uniqueId(type) {
    const taken = new Set(items.map((s) => s.id));
    let n = 1;
    while (taken.has(`${type.replace("_", "-")}-${n}`)) n += 1;
    return `${type.replace("_", "-")}-${n}`;
  }

  function render() {
    const typeSelect = el("select", { class: "new-step-type", "aria-label": "New step type" }, options(STEP_TYPES, "send", (t) => t.replace("_", " ")));
    container.replaceChildren(
      el("ol", { class: "steps-edit" }, items.map(stepRow)),
      el("div", { class: "actions" }, typeSelect,
        el("button", { type: "button", class: "secondary add-step", onclick: () => {
          const type = typeSelect.value;
          items.push({ id: uniqueId(type), ...NEW_STEP[type]() });
          rerender();
        } }, "Add step")));
  }

  render();
  return {
    value() {
      syncRules();
      return structuredClone(items);
    },
    /** Show the server's messages on the steps they name ({index, path, message}). */
    showErrors(errors) {
      const rows = container.querySelectorAll(":scope > ol.steps-edit > li.step");
      for (const { index, path, message } of errors) {
        const row = rows[index];
        if (row) row.querySelector(".step-errors").append(el("li", {}, el("code", { class: "path" }, path), ": ", message));
      }
    },
    clearErrors() {
      for (const list of container.querySelectorAll(".step-errors")) list.replaceChildren();
    },
  };
}
