// The webhook catalogue: each webhook type with its description, the values of its
// status field, its JSON Schema and a sample payload (pretty JSON, as text).
import { h, prettyJson, replace } from "./dom.js";

const CATALOGUE = `query Catalogue { webhookTypes {
  key name description schema samplePayload statuses { value description } } }`;

export async function renderCatalogue(view, _route, context) {
  const types = (await context.gql(CATALOGUE)).webhookTypes;
  replace(view,
    h("h2", {}, "Webhook catalogue"),
    h("p", {}, "The webhooks your company can subscribe to."),
    types.map((type) => h("section", { class: "card webhook-type", "aria-labelledby": `type-${type.key}` },
      h("h3", { id: `type-${type.key}` }, type.name, " ", h("code", {}, type.key)),
      h("p", {}, type.description),
      type.statuses.length ? [h("h4", {}, "Statuses"), h("dl", { class: "facts" },
        type.statuses.map((status) => [h("dt", {}, h("code", {}, status.value)),
          h("dd", {}, status.description || "")]))] : null,
      h("h4", {}, "Sample payload"),
      h("pre", { tabindex: "0", "aria-label": `Sample payload of ${type.name}` }, prettyJson(type.samplePayload)),
      h("details", {}, h("summary", {}, "JSON Schema"),
        h("pre", { tabindex: "0", "aria-label": `JSON Schema of ${type.name}` }, prettyJson(type.schema))))));
  return undefined;
}
