// Subscriptions: the list, and the route to one (subscription_form.js) or a new one. A
// READ_ONLY session sees the same data with every control that would change something
// left out.
import { h, replace, timeElement } from "./dom.js";
import { Pager } from "./pager.js";
import { FIELDS, managementButtons } from "./subscription_actions.js";
import { renderForm } from "./subscription_form.js";

const LIST = `query Subscriptions($after: String) {
  webhookSubscriptions(first: 20, after: $after) {
    nodes { ${FIELDS} } pageInfo { hasNextPage endCursor } } }`;
const ONE = `query Subscription($id: ID!) { webhookSubscription(id: $id) { ${FIELDS} } }`;

/** Renders the screen for #/subscriptions, #/subscriptions/new or #/subscriptions/ID. */
export async function renderSubscriptions(view, { parts }, context) {
  if (parts[0] === "new") return renderForm(view, null, context);
  if (parts[0]) {
    const data = await context.gql(ONE, { id: parts[0] });
    if (!data.webhookSubscription) {
      replace(view, h("h2", {}, "Subscription not found"),
        h("p", {}, "No subscription of your company has this id."),
        h("p", {}, h("a", { href: "#/subscriptions" }, "Back to the subscriptions")));
      return undefined;
    }
    return renderForm(view, data.webhookSubscription, context);
  }
  return renderList(view, context);
}

function renderList(view, context) {
  const body = h("div", { class: "list-body" });
  const pager = new Pager(() => load());
  replace(view,
    h("div", { class: "screen-title" },
      h("h2", {}, "Subscriptions"),
      context.readOnly ? null : h("a", { class: "button primary", href: "#/subscriptions/new" }, "New subscription")),
    context.readOnly ? h("p", { class: "read-only-note" }, "Read-only: you can look, not change.") : null,
    body);

  async function load() {
    try {
      const data = await context.gql(LIST, { after: pager.after });
      const connection = data.webhookSubscriptions;
      pager.pageInfo = connection.pageInfo;
      replace(body,
        connection.nodes.length === 0
          ? h("p", {}, "No subscriptions yet.")
          : h("ul", { class: "cards" }, connection.nodes.map((subscription) => card(subscription))),
        pager.controls("Subscription pages"));
    } catch (error) {
      context.fail(error);
    }
  }

  function card(subscription) {
    const title = subscription.description || subscription.callbackUrl;
    return h("li", { class: "card" },
      h("h3", {}, title),
      h("dl", { class: "facts" },
        fact("Webhook", subscription.webhook.name),
        fact("Callback URL", subscription.callbackUrl),
        fact("State", subscription.isActive ? "Active" : "Paused"),
        fact("Created", timeElement(subscription.createdAt))),
      h("div", { class: "actions" },
        h("a", { href: `#/subscriptions/${encodeURIComponent(subscription.id)}`,
          "aria-label": `${context.readOnly ? "View" : "Edit"} ${title}` }, context.readOnly ? "View" : "Edit"),
        h("a", { href: `#/deliveries?subscription=${encodeURIComponent(subscription.id)}`,
          "aria-label": `Deliveries of ${title}` }, "Deliveries"),
        context.readOnly ? null : managementButtons(subscription, title, context, load)));
  }

  load();
  return undefined;
}

function fact(label, value) {
  return [h("dt", {}, label), h("dd", {}, value)];
}

