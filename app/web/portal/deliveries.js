// The delivery log: newest first, filtered (status, subscription, subject, time range)
// and paginated; each delivery opens to its attempts and can be redelivered; "recover
// failed since" redelivers in bulk. Statuses change live from the deliveryUpdates
// subscription, and the changes are announced politely to screen readers.
import { h, isoToLocalInput, localInputToIso, replace, timeElement } from "./dom.js";
import { actionButton, clearErrors, errorSummary, field, showUserErrors } from "./forms.js";
import { Pager } from "./pager.js";

const PAGE_SIZE = 25;
const STATUSES = ["PENDING", "RETRYING", "HELD", "SUCCEEDED", "FAILED", "CANCELLED"];
const ROW = `id webhookId status cycle attemptCount maxAttempts nextAttemptAt lastAttemptAt
  lastResponseStatus createdAt completedAt
  event { id subject isTest webhook { key name } }
  subscription { id callbackUrl description }`;
const USER_ERRORS = "userErrors { field message code }";
const LIST = `query Deliveries($after: String, $filter: DeliveryFilter) {
  deliveries(first: ${PAGE_SIZE}, after: $after, filter: $filter) {
    nodes { ${ROW} } pageInfo { hasNextPage endCursor } } }`;
const SUBSCRIPTIONS = `query SubscriptionChoices {
  webhookSubscriptions(first: 100) { nodes { id callbackUrl description } } }`;
const ATTEMPT = `number cycle startedAt durationMs responseStatus responseBody error succeeded url`;
const REQUEST = `request { url headers { name value } body }`;
const ATTEMPTS = `query Attempts($id: ID!) { delivery(id: $id) { id
  attempts { ${ATTEMPT} ${REQUEST} } } }`;
const REDELIVER = `mutation Redeliver($id: ID!) { redeliver(deliveryId: $id) {
  delivery { ${ROW} } ${USER_ERRORS} } }`;
const UPDATES = `subscription Updates($subscriptionId: ID, $subject: String) {
  deliveryUpdates(subscriptionId: $subscriptionId, subject: $subject) { ${ROW} } }`;

/** Renders #/deliveries?status=&subscription=&subject=&after=&before= */
export async function renderDeliveries(view, { params }, context) {
  const filters = {
    status: params.get("status") || "",
    subscription: params.get("subscription") || "",
    subject: params.get("subject") || "",
    after: params.get("after") || "",
    before: params.get("before") || "",
  };
  // The first page is asked for at once, beside the filter's choices (not after them).
  const firstPage = context.gql(LIST, { after: null, filter: apiFilter(filters) });
  firstPage.catch(() => {}); // its failure is reported when load() awaits it
  const choices = (await context.gql(SUBSCRIPTIONS)).webhookSubscriptions.nodes;
  const subscriptionOptions = choices.map((choice) => ({ value: choice.id,
    label: choice.description ? `${choice.description} (${choice.callbackUrl})` : choice.callbackUrl }));
  const body = h("div", { class: "list-body" });
  const rows = new Map();
  const pager = new Pager(() => load());

  const filterForm = buildFilterForm(filters, subscriptionOptions, context);
  replace(view,
    h("h2", {}, "Delivery log"),
    context.readOnly ? h("p", { class: "read-only-note" }, "Read-only: you can look, not redeliver.") : null,
    filterForm,
    body,
    context.readOnly ? null : buildRecoverForm(subscriptionOptions, context, () => load()));

  // Updates that arrive while a page is being fetched: the page may predate them.
  const inFlight = new Set();

  async function load(pending = null) {
    const arrived = new Map();
    inFlight.add(arrived);
    try {
      const data = await (pending || context.gql(LIST, { after: pager.after, filter: apiFilter(filters) }));
      const connection = data.deliveries;
      pager.pageInfo = connection.pageInfo;
      rows.clear();
      const tbody = h("tbody", {});
      for (const delivery of connection.nodes) tbody.append(...addRow(delivery));
      replace(body,
        connection.nodes.length === 0
          ? h("p", { class: "empty" }, "No deliveries match.")
          : h("div", { class: "table-scroll", role: "region", "aria-label": "Deliveries", tabindex: "0" },
            h("table", { class: "deliveries" },
              h("caption", { class: "visually-hidden" }, "Deliveries, newest first"),
              h("thead", {}, h("tr", {}, ["Created", "Status", "Webhook", "Subject", "Subscription",
                "Attempts", "Last response", "Actions"].map((title) => h("th", { scope: "col" }, title)))),
              tbody)),
        pager.controls("Delivery pages"));
      inFlight.delete(arrived);
      for (const delivery of arrived.values()) update(delivery);
    } catch (error) {
      context.fail(error);
    } finally {
      inFlight.delete(arrived);
    }
  }

  /** A delivery's row and its (hidden) attempts row; remembered for live updates. */
  function addRow(delivery) {
    const detailId = `attempts-${delivery.id}`;
    const cells = h("tr", { "data-delivery": delivery.id });
    const detailCell = h("td", { colspan: 8 });
    const detail = h("tr", { id: detailId, class: "attempts-row", hidden: true }, detailCell);
    const entry = { delivery, cells, detail, detailCell, open: false, facts: [] };
    rows.set(delivery.id, entry);
    fillRow(entry);
    cells.append(actionsCell(entry));
    return [cells, detail];
  }

  /** The row's buttons, made once: an update redraws the facts beside them, never them, so
   * a click or the keyboard's focus that meets a live update is not lost with the button. */
  function actionsCell(entry) {
    const { delivery } = entry;
    const label = `delivery ${delivery.event.subject || delivery.webhookId}`;
    const toggle = h("button", { type: "button", "aria-expanded": "false",
      "aria-controls": `attempts-${delivery.id}`, "aria-label": `Attempts of ${label}` }, "Attempts");
    toggle.addEventListener("click", () => toggleAttempts(entry, toggle));
    return cell("Actions", toggle, context.readOnly ? null : actionButton("Redeliver", () => redeliver(entry),
      { "aria-label": `Redeliver ${label}` }));
  }

  function fillRow(entry) {
    const { delivery } = entry;
    const facts = [
      cell("Created", timeElement(delivery.createdAt)),
      cell("Status", statusBadge(delivery.status)),
      cell("Webhook", delivery.event.webhook.name, delivery.event.isTest ? " (test)" : ""),
      cell("Subject", delivery.event.subject || "none"),
      cell("Subscription", delivery.subscription.description || delivery.subscription.callbackUrl),
      cell("Attempts", `${delivery.attemptCount} of ${delivery.maxAttempts}`,
        delivery.cycle > 1 ? `, cycle ${delivery.cycle}` : ""),
      cell("Last response", delivery.lastResponseStatus === null ? "none" : String(delivery.lastResponseStatus)),
    ];
    if (entry.facts.length) entry.facts.forEach((old, index) => old.replaceWith(facts[index]));
    else entry.cells.append(...facts);
    entry.facts = facts;
  }

  async function toggleAttempts(entry, toggle) {
    entry.open = !entry.open;
    toggle.setAttribute("aria-expanded", String(entry.open));
    entry.detail.hidden = !entry.open;
    if (entry.open) await showAttempts(entry);
  }

  async function showAttempts(entry) {
    try {
      const delivery = await loadAttempts(context, entry.delivery.id);
      if (delivery === null) {
        replace(entry.detailCell, h("p", {}, "This delivery is gone."));
        return;
      }
      replace(entry.detailCell, attemptsList(delivery.attempts));
    } catch (error) {
      replace(entry.detailCell, h("p", { class: "field-error" }, "The attempts could not be loaded."));
      context.fail(error);
    }
  }

  async function redeliver(entry) {
    try {
      const result = (await context.gql(REDELIVER, { id: entry.delivery.id })).redeliver;
      if (result.userErrors.length) {
        context.alert(result.userErrors.map((error) => error.message).join(" "));
        return;
      }
      update(result.delivery);
      context.announce(`Redelivering ${describe(result.delivery)}.`);
    } catch (error) {
      context.fail(error);
    }
  }

  /** A delivery as an update left it: its row changes in place (or a new one appears). */
  function update(delivery) {
    for (const arrived of inFlight) arrived.set(delivery.id, delivery);
    const entry = rows.get(delivery.id);
    if (entry) {
      if (isOlder(delivery, entry.delivery)) return;
      const changed = entry.delivery.status !== delivery.status;
      entry.delivery = delivery;
      fillRow(entry);
      if (changed) context.announce(`${describe(delivery)} is now ${delivery.status}.`);
      if (entry.open) showAttempts(entry);
      return;
    }
    if (pager.after !== null || !matches(delivery)) return;
    const table = body.querySelector("tbody");
    // The first delivery of an empty log: the whole page (its table) is drawn anew.
    if (table) table.prepend(...addRow(delivery));
    else load();
    context.announce(`New ${describe(delivery)}: ${delivery.status}.`);
  }

  function matches(delivery) {
    if (filters.status && delivery.status !== filters.status) return false;
    if (filters.before && delivery.createdAt >= filters.before) return false;
    if (filters.after && delivery.createdAt < filters.after) return false;
    return true;
  }

  const variables = {};
  if (filters.subscription) variables.subscriptionId = filters.subscription;
  if (filters.subject) variables.subject = filters.subject;
  const stop = context.live.subscribe(UPDATES, variables, {
    next: (data) => update(data.deliveryUpdates),
    error: (message) => context.alert(`Live updates stopped: ${message}`),
    complete: () => {},
  });
  // What changed before the subscription started (or while the socket was down) is not
  // replayed: the page is fetched again once the socket is acknowledged.
  context.onConnected = () => load();
  await load(firstPage);
  return stop;
}

/** The API's DeliveryFilter for the filters in the address. */
function apiFilter(filters) {
  const filter = {};
  if (filters.status) filter.status = filters.status;
  if (filters.subscription) filter.subscriptionId = filters.subscription;
  if (filters.subject) filter.subject = filters.subject;
  if (filters.after) filter.createdAfter = filters.after;
  if (filters.before) filter.createdBefore = filters.before;
  return filter;
}

/** Whether `a` is an earlier state of the delivery than `b` (an update that lost a race). */
function isOlder(a, b) {
  if (a.cycle !== b.cycle) return a.cycle < b.cycle;
  if (a.attemptCount !== b.attemptCount) return a.attemptCount < b.attemptCount;
  return Boolean(b.completedAt) && !a.completedAt;
}

function describe(delivery) {
  return `delivery ${delivery.event.subject ? `for subject ${delivery.event.subject}` : delivery.webhookId}`;
}

function cell(label, ...content) {
  return h("td", { "data-label": label }, ...content);
}

function statusBadge(status) {
  return h("span", { class: `status status-${status.toLowerCase()}` }, status);
}

async function loadAttempts(context, id) {
  return (await context.gql(ATTEMPTS, { id })).delivery;
}

function attemptsList(attempts) {
  if (attempts.length === 0) return h("p", {}, "No attempt yet.");
  return h("ol", { class: "attempts" }, attempts.map((attempt) => h("li", { class: "attempt" },
    h("h3", {}, `Attempt ${attempt.number}`, attempt.cycle > 1 ? ` (cycle ${attempt.cycle})` : "",
      ": ", attempt.succeeded ? "succeeded" : "failed"),
    h("dl", { class: "facts" },
      [h("dt", {}, "Started"), h("dd", {}, timeElement(attempt.startedAt))],
      [h("dt", {}, "Duration"), h("dd", {}, `${attempt.durationMs} ms`)],
      [h("dt", {}, "Response status"), h("dd", {}, attempt.responseStatus === null ? "no response" : String(attempt.responseStatus))],
      attempt.error ? [h("dt", {}, "Error"), h("dd", { class: "attempt-error" }, attempt.error)] : null,
      [h("dt", {}, "Request URL"), h("dd", { class: "url" }, attempt.request ? attempt.request.url : attempt.url || "")]),
    attempt.request ? requestSent(attempt.request) : null,
    h("h4", {}, "Response excerpt"),
    attempt.responseBody ? h("pre", { class: "response-body", tabindex: "0", "aria-label": `Response to attempt ${attempt.number}` },
      attempt.responseBody) : h("p", {}, "No response body."))));
}

function requestSent(request) {
  return [
    h("h4", {}, "Request headers (secret values masked)"),
    h("ul", { class: "headers" }, request.headers.map((header) => h("li", {},
      h("span", { class: "header-name" }, header.name), ": ", header.value))),
    h("h4", {}, "Request body"),
    h("pre", { tabindex: "0", "aria-label": "Request body" }, request.body),
  ];
}

function buildFilterForm(filters, subscriptionOptions, context) {
  const status = field({ label: "Status", name: "status", kind: "select", value: filters.status,
    options: [{ value: "", label: "Any status" }, ...STATUSES.map((value) => ({ value, label: value }))] });
  const subscription = field({ label: "Subscription", name: "subscription", kind: "select", value: filters.subscription,
    options: [{ value: "", label: "All subscriptions" }, ...subscriptionOptions] });
  const subject = field({ label: "Subject (order id)", name: "subject", value: filters.subject });
  const after = field({ label: "Created after", name: "after", type: "datetime-local", value: isoToLocalInput(filters.after) });
  const before = field({ label: "Created before", name: "before", type: "datetime-local", value: isoToLocalInput(filters.before) });
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter deliveries" },
    status, subscription, subject, after, before,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Apply filters"),
      h("a", { href: "#/deliveries" }, "Clear")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    const values = {
      status: status.control.value, subscription: subscription.control.value,
      subject: subject.control.value.trim(),
      after: localInputToIso(after.control.value) || "", before: localInputToIso(before.control.value) || "",
    };
    for (const [name, value] of Object.entries(values)) if (value) query.set(name, value);
    context.navigate(`#/deliveries${query.toString() ? `?${query}` : ""}`);
  });
  return form;
}

function buildRecoverForm(subscriptionOptions, context, reload) {
  const subscription = field({ label: "Subscription", name: "subscriptionId", kind: "select", value: "",
    options: [{ value: "", label: "All subscriptions" }, ...subscriptionOptions] });
  const since = field({ label: "Failed deliveries created since", name: "since", type: "datetime-local", value: "" });
  const summary = errorSummary();
  const result = h("p", { role: "status" });
  const form = h("form", { class: "recover", novalidate: true, "aria-labelledby": "recover-title" },
    h("h3", { id: "recover-title" }, "Recover failed deliveries"),
    summary, subscription, since,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Redeliver failed")), result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    replace(result);
    const sinceIso = localInputToIso(since.control.value);
    if (!sinceIso) {
      showUserErrors(form, [{ field: ["since"], message: "Choose a date and time." }]);
      return;
    }
    const chosen = subscription.control.value;
    // Without a subscription the argument is left out: every subscription's failures.
    const query = chosen
      ? `mutation Recover($subscriptionId: ID!, $since: DateTime!) {
          redeliverFailed(subscriptionId: $subscriptionId, since: $since) { count ${USER_ERRORS} } }`
      : `mutation Recover($since: DateTime!) {
          redeliverFailed(since: $since) { count ${USER_ERRORS} } }`;
    try {
      const variables = chosen ? { subscriptionId: chosen, since: sinceIso } : { since: sinceIso };
      const answer = (await context.gql(query, variables)).redeliverFailed;
      if (answer.userErrors.length) {
        showUserErrors(form, answer.userErrors);
        return;
      }
      replace(result, answer.count === 1 ? "1 failed delivery is being sent again."
        : `${answer.count} failed deliveries are being sent again.`);
      await reload();
    } catch (error) {
      context.fail(error);
    }
  });
  return form;
}
