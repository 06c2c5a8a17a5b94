// The campaign editor's plain fields: a new campaign's starting definition, the
// experiment's numbers (holdout share, arm weights) edited in place, and the server's
// messages put on the field whose exact path they name. Numbers go to the server as typed
// (a number when the text is one, else the text itself): the server's check decides, so
// the console never disagrees with the API about what is valid.

import { ApiError } from "./api.js";
import { el } from "./dom.js";

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** A minimal valid definition for a new campaign: off, one condition, one SMS. */
export function starterDefinition(name, templateNames) {
  return {
    name,
    description: "",
    enabled: false, // nothing is sent until the manager switches it on
    schedule: "0 10 * * *",
    occurrence: "once",
    audience: { all: [{ field: "status", op: "==", value: "active" }] },
    steps: [{ id: "send-1", type: "send", channel: "sms", template: templateNames[0] ?? "" }],
  };
}

/** The typed text as JSON: a number when it reads as one, else the trimmed text. */
export function numberOrText(text) {
  const trimmed = String(text ?? "").trim();
  return NUMBER.test(trimmed) ? Number(trimmed) : trimmed;
}

/** A number input for `path`, followed by the place for the server's message on it. */
export function numberField(label, cls, path, value, onChange) {
  return el("label", { class: `number-field ${cls}` }, label, " ",
    el("input", { class: cls, inputmode: "decimal", value: value ?? "", dataset: { path }, oninput: onChange }),
    el("span", { class: "field-error error", role: "alert", dataset: { errorFor: path } }));
}

/** The value typed in the number field of `path` under `root`. */
export function typedNumber(root, path) {
  const input = [...root.querySelectorAll("input[data-path]")].find((i) => i.dataset.path === path);
  return numberOrText(input?.value);
}

/** The experiment as edited: holdout and each arm's weight from the form, steps from `armSteps(i)`. */
export function editedExperiment(root, experiment, armSteps) {
  return {
    ...experiment,
    holdout: typedNumber(root, "experiment.holdout"),
    arms: experiment.arms.map((arm, index) => ({
      ...arm,
      weight: typedNumber(root, `experiment.arms[${index}].weight`),
      steps: armSteps(index),
    })),
  };
}

/** Clear every field message under `root`, then show each of the error's on its path's field. */
export function markFieldErrors(root, error, strip = "") {
  const spans = [...root.querySelectorAll(".field-error")];
  for (const span of spans) span.textContent = "";
  const items = error instanceof ApiError ? error.problem.errors || [] : [];
  for (const item of items) {
    const field = String(item.field);
    const path = field.startsWith(strip) ? field.slice(strip.length) : field;
    const span = spans.find((s) => s.dataset.errorFor === path);
    if (span) span.textContent = item.message;
  }
}
