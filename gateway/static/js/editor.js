// The campaign editor (admin): list, open, the audience built with the shared form
// builder (rulebuilder.js — no code typed), the steps edited as a sequence (steps.js,
// one editor per journey), save with the server's exact error paths (also shown on the
// step they name), the versions with rollback. While the admin edits, the
// unsaved definition is dry-run (POST …/preview with `definition`, debounced), so the
// audience count and cost estimate are those of the edit before anyone saves it.
// "New campaign" starts from a minimal valid definition (switched off), counted live
// before its first save, which makes it version 1.

import { api, ApiError } from "./api.js";
import { el, errorItems, when } from "./dom.js";
import { editedExperiment, markFieldErrors, numberField, starterDefinition } from "./campaignfields.js";
import { forgetFields, loadFields, ruleBuilder } from "./rulebuilder.js";
import { stepsEditor } from "./steps.js";

const PREVIEW_DELAY_MS = 400;
let fields = [];
let templateNames = []; // offered when a send step names its template
let journeys = []; // [{prefix: "steps" | "experiment.arms[i].steps", editor}]
let current = null; // {name, version, definition}; version 0: new, not saved yet
let audience = null; // the mounted rule builder
let previewTimer = null;
let previewSeq = 0; // answers to older previews are dropped

const node = (id) => document.getElementById(id);

// --- steps, preview, versions

/** One step editor per journey: the steps, or each experiment arm's steps. */
function renderSteps(definition) {
  const box = node("editor-steps");
  const options = { onChange: schedulePreview, templates: templateNames };
  journeys = [];
  const parts = [];
  if (definition.experiment) {
    parts.push(el("p", { class: "experiment" }, el("strong", {}, "Experiment "), numberField("Holdout share", "holdout", "experiment.holdout",
      definition.experiment.holdout ?? 0, schedulePreview), el("span", { class: "hint" }, " from 0 to under 1: 0.1 keeps a tenth untouched")));
    (definition.experiment.arms || []).forEach((arm, index) => {
      const holder = el("div", { class: "journey", dataset: { arm: arm.name } });
      parts.push(el("h5", { class: "arm" }, `Arm ${arm.name} `,
        numberField("weight", "arm-weight", `experiment.arms[${index}].weight`, arm.weight, schedulePreview)), holder);
      journeys.push({ prefix: `experiment.arms[${index}].steps`, editor: stepsEditor(holder, fields, arm.steps, options) });
    });
  } else {
    const holder = el("div", { class: "journey" });
    parts.push(holder);
    journeys.push({ prefix: "steps", editor: stepsEditor(holder, fields, definition.steps, options) });
  }
  box.replaceChildren(...parts);
}

/** Put each error that names a step on that step too (`steps[2].timeout` → the third). */
function markStepErrors(error, strip = "") {
  for (const { editor } of journeys) editor.clearErrors();
  const items = error instanceof ApiError ? error.problem.errors || [] : [];
  for (const item of items) {
    const path = String(item.field).startsWith(strip) ? item.field.slice(strip.length) : String(item.field);
    for (const { prefix, editor } of journeys) {
      const match = path.startsWith(`${prefix}[`) && /^\[(\d+)\]/.exec(path.slice(prefix.length));
      if (match) editor.showErrors([{ index: Number(match[1]), path, message: item.message }]);
    }
  }
}

/** The definition as edited now (not saved). */
function draft() {
  const edited = {
    ...current.definition,
    description: node("editor-description").value,
    enabled: node("editor-enabled").checked,
    schedule: node("editor-schedule").value.trim(),
    audience: audience.value(),
  };
  if (edited.experiment) {
    edited.experiment = editedExperiment(node("editor-steps"), edited.experiment, (index) => journeys[index].editor.value());
  } else {
    edited.steps = journeys[0].editor.value();
  }
  return edited;
}

function showPreview(result) {
  const what = result.draft ? "unsaved edit" : `version ${result.version}`;
  node("preview-errors").replaceChildren();
  node("editor-preview").replaceChildren(
    el("p", {}, "Audience: ", el("strong", { id: "audience-count" }, result.count), " customers; estimated cost ",
      el("strong", { id: "audience-cost" }, `${result.estimated_cost} ${result.currency}`),
      " (", el("span", { id: "preview-of", dataset: { draft: result.draft ? "yes" : "no" } }, what),
      `, holdout ${result.holdout}).`),
    el("ul", { class: "sample" }, result.sample.map((c) => el("li", {}, c.name || c.id, c.arm ? ` (${c.arm})` : ""))),
  );
}

/** Dry-run the saved version (`edited` false) or the edit in the form. */
async function loadPreview(edited = false) {
  const seq = ++previewSeq;
  node("preview-state").textContent = "Counting…";
  const body = edited ? { definition: draft() } : {};
  try {
    const result = await api("POST", `/api/campaigns/${encodeURIComponent(current.name)}/preview`, body);
    if (seq !== previewSeq) return;
    node("preview-state").textContent = "";
    for (const { editor } of journeys) editor.clearErrors();
    markFieldErrors(node("editor"), null);
    showPreview(result);
  } catch (error) {
    if (seq !== previewSeq) return;
    // The last good count stays, marked stale; the edit's problems are listed by path.
    node("preview-state").textContent = "The edit cannot be counted yet:";
    node("editor-preview").querySelector("#preview-of")?.setAttribute("data-stale", "yes");
    node("preview-errors").replaceChildren(...errorItems(error, "definition."));
    markStepErrors(error, "definition.");
    markFieldErrors(node("editor"), error, "definition.");
  }
}

/** Count the edit once the admin pauses typing. */
function schedulePreview() {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(() => current && loadPreview(true), PREVIEW_DELAY_MS);
}

async function loadVersions() {
  if (current.version === 0) return node("editor-versions").replaceChildren();
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
  clearTimeout(previewTimer);
  current = { name: campaign.name, version: campaign.version, definition: campaign.definition };
  node("editor").hidden = false;
  node("editor-title").textContent = campaign.version
    ? `${campaign.name} — version ${campaign.version}`
    : `${campaign.name} — new, not saved yet`;
  node("editor-description").value = campaign.definition.description ?? "";
  node("editor-schedule").value = campaign.definition.schedule ?? "";
  node("editor-enabled").checked = campaign.definition.enabled ?? true; // the schema's default
  node("editor-errors").replaceChildren();
  audience = ruleBuilder(node("audience-builder"), fields, campaign.definition.audience, { onChange: schedulePreview });
  renderSteps(campaign.definition);
  markFieldErrors(node("editor"), null);
  loadPreview(campaign.version === 0); // a new campaign has no saved version to count
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
  try {
    if (current.version === 0 && await exists(current.name)) {
      errors.replaceChildren(el("li", {}, `A campaign named ${current.name} was saved meanwhile: open it from the list.`));
      return;
    }
    const saved = await api("PUT", `/api/campaigns/${encodeURIComponent(current.name)}`, draft());
    show(saved);
    node("editor-status").textContent = saved.new_version === false ? "No change: nothing saved." : `Saved as version ${saved.version}.`;
    loadCampaigns();
  } catch (error) {
    errors.replaceChildren(...errorItems(error));
    markStepErrors(error);
    markFieldErrors(node("editor"), error);
  }
}

/** Whether a campaign of that name is saved (false on 404). */
async function exists(name) {
  try {
    await api("GET", `/api/campaigns/${encodeURIComponent(name)}`);
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return false;
    throw error;
  }
}

/** "New campaign": a free name the server accepts opens the starter definition, unsaved. */
async function startNew(event) {
  event.preventDefault();
  const name = node("campaign-new-name").value.trim();
  const errors = node("campaign-new-errors");
  errors.replaceChildren();
  const definition = starterDefinition(name, templateNames);
  try {
    if (await exists(name)) {
      errors.replaceChildren(el("li", {}, `A campaign named ${name} exists already: open it from the list.`));
      return;
    }
    // The server checks the name as a save would; other problems of the starter (no
    // template yet) are the editor's to show once it is open.
    await api("POST", `/api/campaigns/${encodeURIComponent(name)}/preview`, { definition });
  } catch (error) {
    const problems = error instanceof ApiError ? error.problem.errors || [] : [];
    if (error.status !== 422 || problems.some((item) => item.field === "definition.name")) {
      errors.replaceChildren(...errorItems(error, "definition."));
      return;
    }
  }
  node("campaign-new-name").value = "";
  node("editor-status").textContent = "";
  show({ name, version: 0, definition });
}

/** The campaign list (and the field catalogue, once). */
export async function loadCampaigns() {
  try {
    fields = await loadFields();
    templateNames = (await api("GET", "/api/templates?limit=500")).items.map((t) => t.name);
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
  node("editor-refresh").addEventListener("click", () => current && loadPreview(true));
  node("campaign-new").addEventListener("submit", startNew);
  node("editor-schedule").addEventListener("input", schedulePreview);
  node("editor-enabled").addEventListener("change", schedulePreview);
}

/** Forget the open campaign (sign-out). */
export function clearEditor() {
  current = null;
  audience = null;
  journeys = [];
  clearTimeout(previewTimer);
  forgetFields();
  node("editor").hidden = true;
  node("campaigns").replaceChildren();
  node("editor-status").textContent = "";
  node("campaign-new-errors").replaceChildren();
}
