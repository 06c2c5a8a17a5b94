// My open tasks: click-to-call, and completing a task by choosing the call that did it.
// The gateway verifies the call; a refusal is shown with its exact reason.

import { ApiError, api, qs } from "./api.js";
import { el, when } from "./dom.js";

const REASONS = {
  "call-too-short": "Call too short",
  "call-not-matching": "Wrong customer",
  "call-before-task": "Call made before the task",
};
let ctx = { call: async () => {}, open: () => {} };
const names = new Map();

/** Wire the view; `context.call({customer_id})` places a click-to-call. */
export function initTasks(context) {
  ctx = context;
  document.getElementById("reload-tasks").addEventListener("click", loadTasks);
}

/** Empty the view (sign-out). */
export function clearTasks() {
  names.clear();
  document.getElementById("tasks").replaceChildren();
}

async function customerName(customerId) {
  if (!names.has(customerId)) {
    names.set(customerId, api("GET", `/api/customers/${encodeURIComponent(customerId)}`)
      .then((card) => card.name)
      .catch(() => customerId));
  }
  return names.get(customerId);
}

function callLabel(call) {
  const who = call.direction === "inbound" ? call.caller : call.callee;
  return `${when(call.started_at)} · ${call.direction} ${who || ""} · ${call.talk_seconds ?? 0} s`;
}

async function chooser(task, row) {
  const select = el("select", { "aria-label": "Call that did this task", class: "call-choice" });
  const [own, recent] = await Promise.all([
    api("GET", `/api/calls${qs({ customer_id: task.customer_id, limit: 20 })}`),
    api("GET", `/api/calls${qs({ limit: 20 })}`),
  ]);
  const ended = (call) => call.state === "ended";
  const seen = new Set();
  const group = (label, calls) => {
    const options = calls.filter((c) => ended(c) && !seen.has(c.id)).map((c) => {
      seen.add(c.id);
      return el("option", { value: c.id }, callLabel(c));
    });
    return options.length ? el("optgroup", { label }, options) : null;
  };
  const groups = [group("With this customer", own.items), group("Other recent calls", recent.items)];
  if (!seen.size) return el("p", { class: "hint" }, "No finished calls to choose from yet.");
  select.append(...groups.filter(Boolean));
  const alert = el("p", { class: "error reason", role: "alert" });
  const confirm = el("button", {
    type: "button",
    class: "confirm-complete",
    onclick: async () => {
      alert.textContent = "";
      confirm.disabled = true;
      try {
        await api("POST", `/api/tasks/${encodeURIComponent(task.id)}/complete`, { call_id: select.value });
        row.dataset.status = "done";
        row.replaceChildren(el("p", { class: "done" }, `Done: ${task.kind} with ${await customerName(task.customer_id)}`));
      } catch (error) {
        confirm.disabled = false;
        if (error instanceof ApiError && REASONS[error.kind]) {
          alert.dataset.reason = error.kind;
          alert.textContent = `${REASONS[error.kind]}: ${error.message}`;
        } else {
          alert.textContent = error.message;
        }
      }
    },
  }, "Complete with this call");
  return el("div", { class: "chooser" }, select, " ", confirm, alert);
}

function taskRow(task, name) {
  const row = el("li", { class: "task", dataset: { taskId: task.id, status: task.status } });
  const slot = el("div");
  row.append(
    el("div", { class: "task-head" },
      el("strong", {}, task.kind), " · ",
      el("button", { type: "button", class: "link", onclick: () => ctx.open(task.customer_id) }, name),
      task.due_at ? ` · due ${when(task.due_at)}` : "",
      ` · needs a call over ${task.min_call_seconds} s`),
    el("div", { class: "actions" },
      el("button", { type: "button", class: "call", onclick: () => ctx.call({ customer_id: task.customer_id }) }, "Call"),
      el("button", {
        type: "button",
        class: "complete",
        onclick: async () => {
          slot.replaceChildren(el("p", { class: "hint" }, "Loading calls…"));
          try {
            slot.replaceChildren(await chooser(task, row));
          } catch (error) {
            slot.replaceChildren(el("p", { class: "error" }, error.message));
          }
        },
      }, "Complete…")),
    slot,
  );
  return row;
}

/** Fetch and show my open tasks. */
export async function loadTasks() {
  const list = document.getElementById("tasks");
  const status = document.getElementById("tasks-status");
  try {
    const page = await api("GET", `/api/tasks${qs({ assignee: "me", status: "open", limit: 100 })}`);
    const rows = await Promise.all(
      page.items.map(async (task) => taskRow(task, await customerName(task.customer_id))),
    );
    list.replaceChildren(...rows);
    status.textContent = rows.length ? "" : "No open tasks. Well done.";
  } catch (error) {
    status.textContent = error.message;
  }
}
