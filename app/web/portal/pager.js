// Cursor pagination for the API's connections: the API gives the next page's cursor
// (pageInfo.endCursor); the cursors of the pages before are remembered here.
import { h } from "./dom.js";

export class Pager {
  constructor(onChange) {
    this.onChange = onChange;
    this.history = [];
    this.after = null;
    this.pageInfo = { hasNextPage: false, endCursor: null };
  }

  /** Back to the first page (filters changed). */
  reset() {
    this.history = [];
    this.after = null;
  }

  /** The "Previous" / "Next" controls for the page just shown. */
  controls(label) {
    const previous = h("button", { type: "button", disabled: this.history.length === 0,
      onclick: () => {
        this.after = this.history.pop() ?? null;
        this.onChange();
      } }, "Previous");
    const next = h("button", { type: "button", disabled: !this.pageInfo.hasNextPage,
      onclick: () => {
        this.history.push(this.after);
        this.after = this.pageInfo.endCursor;
        this.onChange();
      } }, "Next");
    return h("nav", { class: "pager", "aria-label": label }, previous,
      h("span", {}, `Page ${this.history.length + 1}`), next);
  }
}
