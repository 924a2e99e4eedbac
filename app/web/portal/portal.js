// The portal's shell: the header (company, session, access), the navigation, the alert
// and announcement regions, and a hash router that hands <main> to one screen at a time.
// Every screen is a client of the public GraphQL API only (graphql.js).
import { h, replace, timeElement } from "./dom.js";
import { ApiError, LiveClient, gql, onSessionEnded, pageMeta } from "./graphql.js";
import { renderSubscriptions } from "./subscriptions.js";
import { renderDeliveries } from "./deliveries.js";
import { renderCatalogue } from "./catalogue.js";

const SESSION = `query PortalSession { portalSession { access expiresAt company { id name } } }`;

const SCREENS = [
  { path: "subscriptions", label: "Subscriptions", render: renderSubscriptions },
  { path: "deliveries", label: "Delivery log", render: renderDeliveries },
  { path: "catalogue", label: "Webhook catalogue", render: renderCatalogue },
];

const main = document.getElementById("main");
const alerts = document.getElementById("alerts");
const announcer = document.getElementById("announcer");
const sessionInfo = document.getElementById("session-info");
const nav = document.getElementById("nav");
const access = pageMeta("webhooks-portal-access") === "FULL" ? "FULL" : "READ_ONLY";
let cleanup = () => {};
let ended = false;
// The first screen keeps the focus where the page put it; later ones move it to their title.
let routedOnce = false;
// A success message for the next screen (navigate's second argument).
let flash = null;

/** Shows a failure in a visible alert that stays until dismissed. */
function showAlert(message, { tone = "error" } = {}) {
  const close = h("button", { type: "button", class: "link", "aria-label": "Dismiss this message" }, "Dismiss");
  const box = h("div", { class: `alert alert-${tone}`, role: tone === "error" ? "alert" : "status" },
    h("p", {}, message), close);
  close.addEventListener("click", () => box.remove());
  alerts.appendChild(box);
  return box;
}

/** Says something to screen readers without moving the focus (aria-live="polite"). */
function announce(message) {
  const line = h("p", {}, message);
  announcer.appendChild(line);
  // Keep the region short: older lines have been read already.
  while (announcer.childElementCount > 5) announcer.firstElementChild.remove();
}

/** Any failure of a call: a session that ended has its own screen; others an alert. */
function fail(error) {
  if (error instanceof ApiError && error.kind === "session") return;
  showAlert(error instanceof Error ? error.message : String(error));
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query) };
}

/** Goes to another screen; `message` is a success said there (e.g. "Created ..."). */
function navigate(hash, message = null) {
  flash = message;
  if (location.hash === hash) route();
  else location.hash = hash;
}

const live = new LiveClient({
  onState: (state, detail) => {
    const badge = document.getElementById("live-state");
    const words = {
      connecting: "Live updates: connecting",
      live: "Live updates: on",
      reconnecting: `Live updates: reconnecting in ${detail} s`,
      refused: `Live updates refused (${detail})`,
      ended: "Live updates: off",
    };
    if (badge) replace(badge, words[state] || state);
    if (state === "refused") showAlert(`The live updates were refused (${detail}).`);
  },
  onConnected: () => {
    if (typeof context.onConnected === "function") context.onConnected();
  },
});

const context = {
  access,
  readOnly: access !== "FULL",
  gql,
  live,
  alert: showAlert,
  announce,
  fail,
  navigate,
  onConnected: null,
};

async function route() {
  if (ended) return;
  cleanup();
  cleanup = () => {};
  context.onConnected = null;
  const { parts, params } = parseHash();
  const screen = SCREENS.find((candidate) => candidate.path === parts[0]) || SCREENS[0];
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.path === screen.path) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  // Success messages belong to the screen they were said on; failures stay until dismissed.
  for (const done of alerts.querySelectorAll(".alert-success")) done.remove();
  if (flash) showAlert(flash, { tone: "success" });
  flash = null;
  replace(main);
  const view = h("div", { class: "screen" });
  main.appendChild(view);
  try {
    const stop = await screen.render(view, { parts: parts.slice(1), params }, context);
    if (typeof stop === "function") cleanup = stop;
  } catch (error) {
    fail(error);
  }
  const heading = main.querySelector("h2");
  document.title = `${heading ? heading.textContent : screen.label}: ${pageMeta("webhooks-company-name")}`;
  if (routedOnce && heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }
  routedOnce = true;
}

function sessionEnded() {
  ended = true;
  cleanup();
  live.shut();
  nav.hidden = true;
  replace(alerts);
  replace(main, h("section", { class: "ended", "aria-labelledby": "ended-title" },
    h("h2", { id: "ended-title", tabindex: "-1" }, "Your session has ended"),
    h("p", {}, "This portal link is no longer valid. Ask for a new link to continue.")));
  replace(sessionInfo, "Session ended");
  main.querySelector("h2").focus();
}

async function showSession() {
  try {
    const data = await gql(SESSION);
    const session = data.portalSession;
    replace(sessionInfo, "Session ends ", timeElement(session.expiresAt));
    replace(document.getElementById("company-name"), session.company.name);
  } catch (error) {
    fail(error);
  }
}

function start() {
  document.getElementById("access").textContent = access === "FULL" ? "Full access" : "Read-only";
  if (access !== "FULL") document.body.classList.add("read-only");
  replace(nav, h("ul", {}, SCREENS.map((screen) =>
    h("li", {}, h("a", { href: `#/${screen.path}`, "data-path": screen.path }, screen.label)))));
  onSessionEnded(sessionEnded);
  window.addEventListener("hashchange", route);
  showSession();
  route();
}

start();
