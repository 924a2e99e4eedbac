// The one element builder. Everything the portal shows is built here, and text goes in
// only as text nodes: whatever the API returns (a receiver's answer, a header, an error)
// can never be parsed as HTML, so there is nothing for a hostile receiver to inject.

/**
 * An element: `props` become attributes (functions named on* become listeners, and
 * `value`/`checked` set the control's state), `children` are nodes or text.
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) {
      // A string here would be an inline handler: refused, CSP or not.
      if (typeof value !== "function") throw new TypeError(`${name} must be a function`);
      element.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "value") {
      element.value = String(value);
    } else if (name === "checked" || name === "selected") {
      element[name] = Boolean(value);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

/** Appends nodes and text (as text nodes); null, undefined and false are skipped. */
export function append(element, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Replaces an element's content. */
export function replace(element, ...children) {
  element.replaceChildren();
  return append(element, children);
}

let uniqueCounter = 0;

/** An id unique in the page, for label/aria-describedby pairs. */
export function uniqueId(prefix) {
  uniqueCounter += 1;
  return `${prefix}-${uniqueCounter}`;
}

/** A date-time as the reader's local time, e.g. "7 Dec 2026, 08:05:13"; "" for null. */
export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

/** A `datetime-local` input's value as an ISO instant (UTC), or null when empty. */
export function localInputToIso(value) {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/** Pretty JSON, for <pre> elements (as text). */
export function prettyJson(value) {
  return JSON.stringify(value, null, 2);
}

/** A <time> element showing a local time with the instant in its datetime attribute. */
export function timeElement(iso) {
  return iso ? h("time", { datetime: iso }, formatTime(iso)) : h("span", {}, "none");
}

/** An ISO instant as a `datetime-local` input's value (the reader's local time). */
export function isoToLocalInput(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const pad = (number) => String(number).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}
