// Form controls with their labels, and the API's userErrors put next to the field they
// name. Every control has a visible <label>; errors are linked with aria-describedby.
import { h, replace, uniqueId } from "./dom.js";

/**
 * A labelled control. `name` is the input's path in the mutation (e.g. "callbackUrl",
 * "headers.0.name"), which is how userErrors find it. `kind`: input, textarea, select.
 */
export function field({ label, name, kind = "input", type = "text", value = "", hint = "",
  options = [], required = false, disabled = false, attributes = {} }) {
  const id = uniqueId("field");
  const hintId = hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  const describedBy = [hintId, errorId].filter(Boolean).join(" ");
  const common = { id, name, "data-field": name, "aria-describedby": describedBy,
    required, disabled, ...attributes };
  let control;
  if (kind === "textarea") {
    control = h("textarea", { ...common, rows: 6, spellcheck: "false" });
    control.value = value ?? "";
  } else if (kind === "select") {
    control = h("select", common,
      options.map((option) => h("option", { value: option.value, selected: option.value === value },
        option.label)));
  } else if (type === "checkbox") {
    control = h("input", { ...common, type, checked: Boolean(value) });
  } else {
    control = h("input", { ...common, type, value: value ?? "" });
  }
  const error = h("p", { id: errorId, class: "field-error", hidden: true });
  const wrapper = h("div", { class: type === "checkbox" ? "field field-checkbox" : "field" },
    type === "checkbox" ? [control, h("label", { for: id }, label)] : [h("label", { for: id }, label), control],
    hint ? h("p", { id: hintId, class: "hint" }, hint) : null,
    error);
  wrapper.control = control;
  return wrapper;
}

/** Removes the errors shown on a form (before it is sent again). */
export function clearErrors(form) {
  for (const error of form.querySelectorAll(".field-error")) {
    error.hidden = true;
    replace(error);
  }
  for (const control of form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
  const summary = form.querySelector(".form-errors");
  if (summary) {
    summary.hidden = true;
    replace(summary);
  }
}

/**
 * Shows userErrors next to their fields: a field path such as ["input", "headers", "0",
 * "value"] goes to the control named "headers.0.value", else the nearest one above it
 * ("headers.0", "headers"). Errors no control claims go to the form's summary, so none
 * is lost. The first control in error gets the focus.
 */
export function showUserErrors(form, userErrors) {
  const summary = form.querySelector(".form-errors");
  let first = null;
  for (const userError of userErrors) {
    const path = (userError.field || []).filter((part, index) => !(index === 0 && part === "input"));
    let control = null;
    for (let length = path.length; length > 0 && control === null; length -= 1) {
      control = form.querySelector(`[data-field="${CSS.escape(path.slice(0, length).join("."))}"]`);
    }
    if (control === null || control.closest(".field") === null) {
      summary.hidden = false;
      summary.appendChild(h("p", {}, userError.message));
      first = first || summary;
      continue;
    }
    const target = control.matches("input, select, textarea")
      ? control : control.querySelector("input, select, textarea") || control;
    target.setAttribute("aria-invalid", "true");
    const error = control.closest(".field").querySelector(":scope > .field-error");
    error.hidden = false;
    error.appendChild(h("span", {}, userError.message, " "));
    first = first || target;
  }
  if (first) first.focus();
}

/** The summary box every form carries for errors that belong to no single field. */
export function errorSummary() {
  return h("div", { class: "form-errors", role: "alert", tabindex: "-1", hidden: true });
}

/**
 * A button that runs `action`, refusing clicks while it runs. It is marked aria-disabled
 * rather than disabled: a disabled button loses the focus, and a dialog it opened could
 * not give the focus back to it.
 */
export function actionButton(label, action, props = {}) {
  const button = h("button", { type: "button", ...props }, label);
  let running = false;
  button.addEventListener("click", async () => {
    if (running) return;
    running = true;
    button.setAttribute("aria-disabled", "true");
    try {
      await action(button);
    } finally {
      running = false;
      button.removeAttribute("aria-disabled");
    }
  });
  return button;
}
