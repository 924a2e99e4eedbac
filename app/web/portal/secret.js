// The signing secret of a new or rotated subscription, shown once: a Copy button and the
// Python a receiver runs to verify deliveries with it.
import { h, replace } from "./dom.js";
import { openDialog } from "./dialog.js";

// What a receiver runs to check a delivery's signature (README, "Receiving webhooks").
// tests/unit/test_portal_assets.py runs it against a signed body: keep the markers.
// snippet-start
const VERIFY_SNIPPET = `# pip install standardwebhooks
import os

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

verifier = Webhook(os.environ["SIGNING_SECRET"])  # the "whsec_..." secret shown once


def verify(body: bytes, headers: dict[str, str]) -> dict:
    """The event, or WebhookVerificationError when it is not signed with the secret."""
    lowered = {name.lower(): value for name, value in headers.items()}
    return verifier.verify(body, lowered)  # webhook-id, webhook-timestamp, webhook-signature
`;
// snippet-end

/** The signing secret, shown once: copy button and the Python to verify deliveries. */
export async function showSecret(secret) {
  const input = h("input", { id: "signing-secret", type: "text", readonly: true, value: secret,
    class: "secret", "data-autofocus": true, spellcheck: "false" });
  const copied = h("p", { role: "status", class: "hint" });
  const copy = h("button", { type: "button", onclick: async () => {
    input.select();
    try {
      await navigator.clipboard.writeText(secret);
      replace(copied, "Copied.");
    } catch {
      replace(copied, "Copying was refused by the browser: the secret is selected, press Ctrl+C.");
    }
  } }, "Copy");
  await openDialog({
    title: "Your signing secret",
    content: [
      h("p", {}, "Store it now: it is shown only this once."),
      h("label", { for: "signing-secret" }, "Signing secret"),
      h("div", { class: "secret-row" }, input, copy),
      copied,
      h("h3", {}, "Verify deliveries (Python)"),
      h("pre", { tabindex: "0", "aria-label": "Python verification code" }, VERIFY_SNIPPET),
    ],
    actions: [{ label: "I have stored it", value: "done", primary: true }],
  });
}

