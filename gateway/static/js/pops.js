// Screen-pops: a card per ringing call, updated by call_update (answered, answered
// elsewhere, ended), then a wrap-up topic. Queue calls pop for everyone; the others'
// pops close when one operator answers.

import { api } from "./api.js";
import { customerCard } from "./card.js";
import { el, flash } from "./dom.js";

const CLOSE_AFTER_MS = 5000;
const STATE_TEXT = {
  ringing: "Ringing",
  answered: "Talking",
  answered_elsewhere: "Answered by a colleague",
  ended: "Ended",
};

let ctx = { topics: [], call: () => {}, open: () => {} };
const pops = new Map();

/** Wire the pops to the console: topics, click-to-call and open-customer actions. */
export function initPops(context) {
  ctx = context;
  clearPops();
}

/** Drop every pop (sign-out). */
export function clearPops() {
  pops.clear();
  document.getElementById("pops").replaceChildren();
  document.getElementById("no-pops").hidden = false;
}

/** Handle one live message from an extension's socket. */
export function onLive(message, extension) {
  if (message.type === "screen_pop") showPop(message, extension);
  else if (message.type === "call_update") updatePop(message, extension);
}

function key(callId, extension) {
  return `${callId}@${extension}`;
}

function unknownCaller(message) {
  const result = el("span", { class: "hint", role: "status" });
  const button = el(
    "button",
    {
      type: "button",
      class: "create-in-crm",
      onclick: async () => {
        button.disabled = true;
        try {
          await api("POST", `/api/calls/${encodeURIComponent(message.call_id)}/unknown-caller`);
          result.textContent = "Sent to the CRM as a new lead.";
        } catch (error) {
          button.disabled = false;
          result.textContent = error.message;
        }
      },
    },
    "Create in CRM",
  );
  return el("div", { class: "unknown" }, el("p", {}, "Unknown caller."), button, " ", result);
}

function candidates(message) {
  return el(
    "div",
    { class: "ambiguous" },
    el("p", {}, "Several customers share this number — ask who is calling:"),
    el(
      "ul",
      {},
      (message.candidates || []).map((c) =>
        el("li", {}, el("button", { type: "button", class: "link", onclick: () => ctx.open(c.id) }, c.name)),
      ),
    ),
  );
}

function showPop(message, extension) {
  const id = key(message.call_id, extension);
  if (pops.has(id)) return;
  const stateBadge = el("span", { class: "pill state" }, STATE_TEXT.ringing);
  let body;
  if (message.customer) {
    const customer = message.customer;
    body = customerCard(customer, [
      el("button", { type: "button", onclick: () => ctx.open(customer.id) }, "Open customer"),
    ], message.call_id);
  } else if (message.match === "ambiguous") {
    body = candidates(message);
  } else {
    body = unknownCaller(message);
  }
  const wrap = el("div", { class: "wrap-up", hidden: true });
  const node = el(
    "section",
    { class: "pop", dataset: { callId: message.call_id, extension, state: "ringing" } },
    el("header", {}, el("strong", { class: "caller" }, message.caller || "hidden number"),
      ` → ${extension} `, stateBadge),
    body,
    wrap,
  );
  pops.set(id, { node, stateBadge, wrap, message });
  document.getElementById("no-pops").hidden = true;
  document.getElementById("pops").prepend(node);
  document.dispatchEvent(new CustomEvent("pop", { detail: message }));
}

function updatePop(message, extension) {
  const id = key(message.call_id, extension);
  const pop = pops.get(id);
  if (!pop) return;
  pop.node.dataset.state = message.state;
  pop.stateBadge.textContent = STATE_TEXT[message.state] || message.state;
  if (message.state === "answered_elsewhere") {
    setTimeout(() => closePop(id), CLOSE_AFTER_MS);
  } else if (message.state === "ended") {
    if (message.talk_seconds) {
      pop.stateBadge.textContent = `Ended · ${message.talk_seconds} s`;
      showWrapUp(id, pop, message.call_id);
    } else {
      // Rang here but nobody answered: nothing to wrap up.
      setTimeout(() => closePop(id), CLOSE_AFTER_MS);
    }
  }
}

function showWrapUp(id, pop, callId) {
  const select = el("select", { "aria-label": "Call topic" },
    el("option", { value: "" }, "Topic…"),
    ctx.topics.map((topic) => el("option", { value: topic }, topic.replaceAll("_", " "))));
  const status = el("span", { role: "status", class: "hint" });
  const save = el("button", {
    type: "button",
    onclick: async () => {
      if (!select.value) {
        status.textContent = "Choose a topic first.";
        return;
      }
      try {
        await api("PUT", `/api/calls/${encodeURIComponent(callId)}/topic`, { topic: select.value });
        status.textContent = "Saved.";
        setTimeout(() => closePop(id), 1500);
      } catch (error) {
        flash(error.message);
      }
    },
  }, "Save topic");
  const dismiss = el("button", { type: "button", class: "secondary", onclick: () => closePop(id) }, "Dismiss");
  pop.wrap.replaceChildren(el("label", {}, "Wrap-up ", select), save, dismiss, status);
  pop.wrap.hidden = false;
}

function closePop(id) {
  const pop = pops.get(id);
  if (!pop) return;
  pops.delete(id);
  pop.node.remove();
  document.getElementById("no-pops").hidden = pops.size > 0;
}
