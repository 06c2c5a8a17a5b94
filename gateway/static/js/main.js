// The operator console: sign-in (token → session cookie), views, live feed, actions.

import { api, setCsrf } from "./api.js";
import { initCustomers, clearCustomers, openCustomer } from "./customers.js";
import { el, flash } from "./dom.js";
import { startLive, stopLive } from "./live.js";
import { clearPops, initPops, onLive } from "./pops.js";
import { clearTasks, initTasks, loadTasks } from "./tasks.js";
import { clearDashboard, initDashboard, loadDashboard } from "./dashboard.js";
import { clearEditor, initEditor, loadCampaigns } from "./editor.js";
import { clearTemplates, initTemplates, loadTemplates } from "./templates.js";
import { clearPartners, initPartners, loadPartners } from "./partners.js";

const VIEWS = ["calls", "customers", "tasks", "dashboard", "campaigns", "templates", "partners"];
let me = null;

function show(view) {
  document.getElementById("view-sign-in").hidden = view !== "sign-in";
  for (const name of VIEWS) document.getElementById(`view-${name}`).hidden = name !== view;
  for (const button of document.querySelectorAll("#nav button")) {
    if (button.dataset.view === view) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  if (view === "tasks") loadTasks();
  if (view === "dashboard") loadDashboard();
  if (view === "campaigns") loadCampaigns();
  if (view === "templates") loadTemplates();
  if (view === "partners") loadPartners();
}

function myExtension() {
  return document.getElementById("extension").value;
}

/** Click-to-call from the selected extension: `target` is {customer_id} or {number}. */
async function call(target) {
  const extension = myExtension();
  if (!extension) {
    flash("You have no extension to call from; ask an administrator to add one.");
    return;
  }
  try {
    await api("POST", "/api/calls/originate", { agent_extension: extension, ...target });
    flash(`Calling… your phone ${extension} rings first.`, "info");
  } catch (error) {
    flash(error.message);
  }
}

function signedIn(identity) {
  me = identity;
  setCsrf(identity.csrf_token);
  document.getElementById("who").textContent = `${identity.name} (${identity.role})`;
  const picker = document.getElementById("extension");
  picker.replaceChildren(...identity.extensions.map((ext) => el("option", { value: ext }, ext)));
  document.getElementById("ext-picker").hidden = identity.extensions.length === 0;
  document.getElementById("nav").hidden = false;
  // Pages are offered to the roles they name (the API refuses other roles anyway):
  // statistics to admins and supervisors, configuration to admins.
  for (const button of document.querySelectorAll("#nav [data-role]")) {
    button.hidden = !button.dataset.role.split(" ").includes(identity.role);
  }
  document.getElementById("sign-out").hidden = false;
  initPops({ topics: identity.call_topics, call, open: openCustomer });
  startLive(identity.extensions, onLive);
  show("calls");
}

function signedOut() {
  me = null;
  setCsrf(null);
  stopLive();
  clearPops();
  clearCustomers();
  clearTasks();
  clearDashboard();
  clearEditor();
  clearTemplates();
  clearPartners();
  document.getElementById("who").textContent = "";
  document.getElementById("ext-picker").hidden = true;
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  show("sign-in");
}

async function showHealth() {
  const badge = document.getElementById("health");
  try {
    const health = await (await fetch("/health")).json();
    badge.textContent = health.status;
    badge.className = `badge ${health.status}`;
  } catch {
    badge.textContent = "unreachable";
    badge.className = "badge degraded";
  }
}

document.getElementById("sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("token");
  const error = document.getElementById("sign-in-error");
  error.textContent = "";
  try {
    const session = await api("POST", "/api/session", { token: input.value.trim() });
    setCsrf(session.csrf_token);
    input.value = "";
    signedIn(await api("GET", "/api/me"));
  } catch (problem) {
    error.textContent = problem.message;
  }
});

document.getElementById("sign-out").addEventListener("click", async () => {
  try {
    await api("DELETE", "/api/session");
  } catch {
    // Signed out already (expired or revoked): the page forgets the session anyway.
  }
  signedOut();
});

document.getElementById("nav").addEventListener("click", (event) => {
  const view = event.target.closest("button")?.dataset.view;
  if (view) show(view);
});
document.addEventListener("show-view", (event) => show(event.detail));
document.addEventListener("signed-out", () => {
  if (me) signedOut();
});
document.addEventListener("pop", () => {
  if (document.getElementById("view-calls").hidden) show("calls");
});

initCustomers({ call });
initTasks({ call, open: openCustomer });
initDashboard();
initEditor();
initTemplates();
initPartners();
showHealth();
setInterval(showHealth, 15000);

// A reload keeps the session: the cookie is still there, /api/me returns the CSRF token.
api("GET", "/api/me").then(signedIn, () => show("sign-in"));
