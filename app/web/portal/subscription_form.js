// Creating and editing a subscription: every setting the API has, the content filter
// tested before it is saved, and the API's userErrors next to their fields.
import { h, prettyJson, replace, timeElement } from "./dom.js";
import { actionButton, clearErrors, errorSummary, field, showUserErrors } from "./forms.js";
import { FIELDS, UPDATE, USER_ERRORS, managementButtons } from "./subscription_actions.js";
import { showSecret } from "./secret.js";

const WEBHOOKS = `query Webhooks { webhookTypes { key name } }`;
const CREATE = `mutation Create($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) { subscription { ${FIELDS} } signingSecret ${USER_ERRORS} } }`;
const TEST_FILTER = `query TestFilter($filter: JSON, $webhook: String) {
  testSubscriptionFilter(filter: $filter, webhook: $webhook) {
    matched reasons ${USER_ERRORS} } }`;


/**
 * Rows of name/value pairs (API key parameters, custom headers). On an existing
 * subscription the values are secret and never come back: the list is sent only once
 * it is changed, and then every value must be given again (the API replaces the list).
 */
function pairsEditor({ name, legend, addLabel, hint, existing, disabled }) {
  const rows = h("div", { class: "pairs" });
  const editor = h("fieldset", { class: "field pairs-field", "data-field": name, tabindex: "-1" },
    h("legend", {}, legend),
    h("p", { class: "hint" }, hint),
    rows,
    h("p", { class: "field-error", hidden: true }));
  editor.dirty = false;
  const renumber = () => {
    [...rows.children].forEach((row, index) => {
      row.dataset.field = `${name}.${index}`;
      row.querySelector("[data-part=name]").dataset.field = `${name}.${index}.name`;
      row.querySelector("[data-part=value]").dataset.field = `${name}.${index}.value`;
      row.querySelector(".remove").setAttribute("aria-label", `Remove ${legend.toLowerCase()} row ${index + 1}`);
    });
  };
  const addRow = (pair = { name: "", valueHint: "" }) => {
    const nameField = field({ label: "Name", name: "", value: pair.name, disabled });
    const valueField = field({ label: "Value", name: "", value: "", disabled,
      attributes: { placeholder: pair.valueHint ? `unchanged (${pair.valueHint})` : "", autocomplete: "off" } });
    nameField.control.dataset.part = "name";
    valueField.control.dataset.part = "value";
    const row = h("div", { class: "field pair-row", tabindex: "-1" }, nameField, valueField,
      disabled ? null : h("button", { type: "button", class: "remove link", onclick: () => {
        row.remove();
        editor.dirty = true;
        renumber();
        add.focus();
      } }, "Remove"),
      h("p", { class: "field-error", hidden: true }));
    row.addEventListener("input", () => { editor.dirty = true; });
    rows.appendChild(row);
    renumber();
    return row;
  };
  const add = h("button", { type: "button", disabled, onclick: () => {
    editor.dirty = true;
    addRow().querySelector("input").focus();
  } }, addLabel);
  editor.insertBefore(add, editor.lastElementChild);
  for (const pair of existing) addRow(pair);
  editor.read = () => [...rows.children].map((row) => ({
    name: row.querySelector("[data-part=name]").value.trim(),
    value: row.querySelector("[data-part=value]").value,
  }));
  return editor;
}


/** The form of a new subscription (`subscription` null) or of an existing one. */
export async function renderForm(view, subscription, context) {
  const creating = subscription === null;
  const readOnly = context.readOnly;
  if (creating && readOnly) {
    replace(view, h("h2", {}, "New subscription"),
      h("p", { class: "read-only-note" }, "Read-only: this session cannot create subscriptions."));
    return undefined;
  }
  const webhookTypes = creating ? (await context.gql(WEBHOOKS)).webhookTypes : [];
  const disabled = readOnly;
  const webhook = creating
    ? field({ label: "Webhook", name: "webhook", kind: "select", value: webhookTypes[0]?.key,
      options: webhookTypes.map((type) => ({ value: type.key, label: `${type.name} (${type.key})` })) })
    : null;
  const callbackUrl = field({ label: "Callback URL", name: "callbackUrl", type: "url",
    value: subscription?.callbackUrl, disabled, hint: "Where each delivery is POSTed, e.g. https://hooks.example.com/planomatic" });
  const email = field({ label: "Notification email", name: "notificationEmail", type: "email",
    value: subscription?.notificationEmail, disabled, hint: "Told when a delivery fails for good." });
  const description = field({ label: "Description", name: "description", value: subscription?.description, disabled });
  const active = field({ label: "Active: deliveries are sent", name: "isActive", type: "checkbox",
    value: subscription ? subscription.isActive : true, disabled });
  const params = pairsEditor({ name: "apiKeyParams", legend: "API key parameters", addLabel: "Add API key parameter",
    hint: creating ? "Appended to the callback URL's query string." :
      "Appended to the callback URL's query string. Values are never shown again: changing this list replaces it, so enter every value.",
    existing: subscription?.apiKeyParams || [], disabled });
  const headers = pairsEditor({ name: "headers", legend: "Custom headers", addLabel: "Add custom header",
    hint: creating ? "Sent with every request, e.g. Authorization." :
      "Sent with every request. Values are never shown again: changing this list replaces it, so enter every value.",
    existing: subscription?.headers || [], disabled });
  const originalFilter = subscription?.filter == null ? "" : prettyJson(subscription.filter);
  const filter = field({ label: "Content filter (JSON)", name: "filter", kind: "textarea", value: originalFilter, disabled,
    hint: 'Only matching events are delivered, e.g. {"order_status": {"$in": ["notified", "completed"]}}. Empty: every event.' });
  const filterResult = h("div", { class: "filter-result", role: "status" });
  const rate = field({ label: "Delivery rate (per second)", name: "maxDeliveriesPerSecond", type: "number",
    value: subscription?.maxDeliveriesPerSecond ?? "", disabled, attributes: { min: 1, max: 1000, inputmode: "numeric" },
    hint: "1 to 1000; empty: no limit." });
  const ordering = field({ label: "Ordering", name: "ordering", kind: "select", value: subscription?.ordering || "NONE", disabled,
    options: [{ value: "NONE", label: "None: as they come" }, { value: "PER_SUBJECT", label: "Per subject: in publish order" }] });
  const summary = errorSummary();

  const form = h("form", { class: "subscription-form", novalidate: true, "aria-labelledby": "form-title" },
    summary, webhook, callbackUrl, email, description, active, params, headers,
    h("div", { class: "field-group" }, filter,
      disabled ? null : actionButton("Test filter on the sample payload", () => testFilter())),
    filterResult, rate, ordering,
    disabled ? null : h("div", { class: "actions" },
      h("button", { type: "submit", class: "primary" }, creating ? "Create subscription" : "Save changes"),
      h("a", { href: "#/subscriptions" }, "Cancel")));

  const readFilter = () => {
    const text = filter.control.value.trim();
    if (text === "") return { value: null };
    try {
      return { value: JSON.parse(text) };
    } catch (error) {
      return { error: `Not valid JSON: ${error.message}` };
    }
  };

  async function testFilter() {
    clearErrors(form);
    replace(filterResult);
    const parsed = readFilter();
    if (parsed.error) {
      showUserErrors(form, [{ field: ["filter"], message: parsed.error }]);
      return;
    }
    try {
      const variables = { filter: parsed.value,
        webhook: webhook ? webhook.control.value : subscription.webhook.key };
      const result = (await context.gql(TEST_FILTER, variables)).testSubscriptionFilter;
      if (result.userErrors.length) {
        showUserErrors(form, result.userErrors);
        return;
      }
      replace(filterResult,
        h("p", {}, result.matched ? "The sample payload matches: it would be delivered." :
          "The sample payload does not match: it would not be delivered."),
        result.reasons.length ? h("ul", {}, result.reasons.map((reason) => h("li", {}, reason))) : null);
    } catch (error) {
      context.fail(error);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const parsed = readFilter();
    if (parsed.error) {
      showUserErrors(form, [{ field: ["input", "filter"], message: parsed.error }]);
      return;
    }
    const rateText = rate.control.value.trim();
    const input = {
      callbackUrl: callbackUrl.control.value.trim(),
      notificationEmail: email.control.value.trim(),
      description: description.control.value.trim() || null,
      isActive: active.control.checked,
      maxDeliveriesPerSecond: rateText === "" ? null : Number(rateText),
      ordering: ordering.control.value,
    };
    if (rateText !== "" && !Number.isInteger(input.maxDeliveriesPerSecond)) {
      showUserErrors(form, [{ field: ["input", "maxDeliveriesPerSecond"], message: "A whole number, 1 to 1000." }]);
      return;
    }
    if (creating || params.dirty) input.apiKeyParams = params.read();
    if (creating || headers.dirty) input.headers = headers.read();
    if (creating) {
      input.webhook = webhook.control.value;
      if (parsed.value !== null) input.filter = parsed.value;
    } else {
      input.id = subscription.id;
      if (filter.control.value.trim() !== originalFilter.trim()) input.filter = parsed.value;
    }
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      const data = await context.gql(creating ? CREATE : UPDATE, { input });
      const result = creating ? data.createWebhookSubscription : data.updateWebhookSubscription;
      if (result.userErrors.length) {
        showUserErrors(form, result.userErrors);
        return;
      }
      if (creating) {
        await showSecret(result.signingSecret);
        context.navigate("#/subscriptions", `Created the subscription to ${result.subscription.callbackUrl}.`);
      } else {
        context.navigate(`#/subscriptions/${encodeURIComponent(subscription.id)}`, "Saved.");
      }
    } catch (error) {
      context.fail(error);
    } finally {
      if (submit.isConnected) submit.disabled = false;
    }
  });

  const heading = creating ? "New subscription" : (subscription.description || subscription.callbackUrl);
  replace(view,
    h("p", {}, h("a", { href: "#/subscriptions" }, "All subscriptions")),
    h("h2", { id: "form-title" }, heading),
    subscription ? h("p", {}, `${subscription.webhook.name} · created `, timeElement(subscription.createdAt),
      " · updated ", timeElement(subscription.updatedAt)) : null,
    readOnly ? h("p", { class: "read-only-note" }, "Read-only: you can look, not change.") : null,
    form,
    !creating && !readOnly ? h("div", { class: "actions manage" },
      managementButtons(subscription, heading, context,
        () => context.navigate(location.hash), (message) => context.navigate("#/subscriptions", message))) : null);
  return undefined;
}
