// Modal dialogs on the native <dialog>: showModal() makes the rest of the page inert (so
// focus stays inside), Escape closes it, and the focus goes back where it was.
import { h } from "./dom.js";

/** Opens a modal with `content`; resolves with the returned value when it closes. */
export function openDialog({ title, content, actions }) {
  const opener = document.activeElement;
  const titleId = `dialog-title-${Date.now()}`;
  const dialog = h("dialog", { "aria-labelledby": titleId, class: "dialog" },
    h("h2", { id: titleId }, title),
    content,
    h("div", { class: "dialog-actions" }, actions.map((action) =>
      h("button", { type: "button", class: action.primary ? "primary" : action.danger ? "danger" : "",
        onclick: () => dialog.close(action.value) }, action.label))));
  document.body.appendChild(dialog);
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (opener && opener.isConnected && typeof opener.focus === "function") opener.focus();
      resolve(dialog.returnValue);
    });
    dialog.showModal();
    const preferred = dialog.querySelector("[data-autofocus]") || dialog.querySelector("button");
    if (preferred) preferred.focus();
  });
}

/** Asks a yes/no question; resolves true when the person confirms. */
export async function confirmDialog({ title, message, confirm }) {
  const answer = await openDialog({
    title,
    content: h("p", {}, message),
    actions: [
      { label: "Cancel", value: "cancel" },
      { label: confirm, value: "confirm", danger: true },
    ],
  });
  return answer === "confirm";
}
