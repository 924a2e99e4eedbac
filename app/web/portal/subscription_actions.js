// What can be done to one subscription besides editing it: pause/resume, send a test
// event, rotate the signing secret, delete; and the fields every screen of it reads.
import { actionButton } from "./forms.js";
import { confirmDialog } from "./dialog.js";
import { showSecret } from "./secret.js";

export const FIELDS = `
  id isActive createdAt updatedAt callbackUrl notificationEmail description
  apiKeyParams { name valueHint } headers { name valueHint } filter
  maxDeliveriesPerSecond ordering webhook { key name }`;
export const USER_ERRORS = "userErrors { field message code }";
export const UPDATE = `mutation Update($input: UpdateWebhookSubscriptionInput!) {
  updateWebhookSubscription(input: $input) { subscription { ${FIELDS} } ${USER_ERRORS} } }`;
const DELETE = `mutation Delete($id: ID!) {
  deleteWebhookSubscription(id: $id) { deletedId ${USER_ERRORS} } }`;
const ROTATE = `mutation Rotate($id: ID!) {
  rotateWebhookSubscriptionSecret(id: $id) { subscription { id } signingSecret ${USER_ERRORS} } }`;
const SEND_TEST = `mutation SendTest($id: ID!) {
  sendTestEvent(subscriptionId: $id) { event { id } ${USER_ERRORS} } }`;

/** Pause/resume, send a test event, rotate the secret, delete: FULL sessions only. */
export function managementButtons(subscription, title, context, reload, afterDelete = async (message) => {
  context.alert(message, { tone: "success" });
  await reload();
}) {
  const run = async (query, variables, key) => {
    try {
      const result = (await context.gql(query, variables))[key];
      if (result.userErrors.length) {
        context.alert(result.userErrors.map((error) => error.message).join(" "));
        return null;
      }
      return result;
    } catch (error) {
      context.fail(error);
      return null;
    }
  };
  return [
    actionButton(subscription.isActive ? "Pause" : "Resume", async () => {
      const result = await run(UPDATE, { input: { id: subscription.id, isActive: !subscription.isActive } },
        "updateWebhookSubscription");
      if (result) {
        context.announce(`${title} is ${result.subscription.isActive ? "active" : "paused"}.`);
        await reload();
      }
    }, { "aria-label": `${subscription.isActive ? "Pause" : "Resume"} ${title}` }),
    actionButton("Send test event", async () => {
      const result = await run(SEND_TEST, { id: subscription.id }, "sendTestEvent");
      if (result) {
        context.alert(`Test event sent to ${subscription.callbackUrl}: see the delivery log.`, { tone: "success" });
      }
    }, { "aria-label": `Send a test event to ${title}` }),
    actionButton("Rotate secret", async () => {
      const confirmed = await confirmDialog({
        title: "Rotate the signing secret?",
        message: "A new secret signs every delivery from now on; the previous one keeps signing beside it for 24 hours.",
        confirm: "Rotate",
      });
      if (!confirmed) return;
      const result = await run(ROTATE, { id: subscription.id }, "rotateWebhookSubscriptionSecret");
      if (result) await showSecret(result.signingSecret);
    }, { "aria-label": `Rotate the signing secret of ${title}` }),
    actionButton("Delete", async () => {
      const confirmed = await confirmDialog({
        title: "Delete this subscription?",
        message: `${title}: no more deliveries are sent and pending retries are cancelled. Past deliveries stay in the log.`,
        confirm: "Delete",
      });
      if (!confirmed) return;
      const result = await run(DELETE, { id: subscription.id }, "deleteWebhookSubscription");
      if (result) {
        await afterDelete(`Deleted ${title}.`);
      }
    }, { class: "danger", "aria-label": `Delete ${title}` }),
  ];
}

