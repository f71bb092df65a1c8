// Renders the server's OpenAPI description as plain HTML: no framework, no network
// beyond this server, so the page works on a private network.
"use strict";

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function resolve(spec, schema) {
  if (schema && schema.$ref) {
    const name = schema.$ref.split("/").pop();
    return { name, schema: spec.components.schemas[name] };
  }
  return { name: null, schema };
}

function schemaText(spec, schema, depth) {
  const { name, schema: s } = resolve(spec, schema);
  if (!s) return "";
  if (depth > 2) return name || "object";
  if (s.properties) {
    const lines = Object.entries(s.properties).map(([key, prop]) => {
      const inner = resolve(spec, prop.items || prop).schema || {};
      const type = prop.type === "array" ? `array of ${schemaText(spec, prop.items, depth + 1)}`
        : (prop.anyOf ? prop.anyOf.map((p) => p.type || resolve(spec, p).name).join(" | ")
          : (prop.$ref ? schemaText(spec, prop, depth + 1) : prop.type || inner.type || ""));
      const about = prop.description ? ` — ${prop.description}` : "";
      return `${"  ".repeat(depth)}${key}: ${type}${about}`;
    });
    return (name ? `${name}\n` : "") + lines.join("\n");
  }
  return s.type || name || "";
}

function operation(spec, path, method, op) {
  const box = el("section", undefined, "op");
  const head = el("h3");
  head.append(el("span", method.toUpperCase(), "method"), el("span", path, "path"));
  box.append(head);
  if (op.summary) box.append(el("p", op.summary));
  if (op.description) box.append(el("p", op.description));
  if (op.parameters && op.parameters.length) {
    const table = el("table");
    table.append(el("caption", "Parameters"));
    for (const p of op.parameters) {
      const row = el("tr");
      row.append(el("td", p.name), el("td", p.in), el("td", p.description || ""));
      table.append(row);
    }
    box.append(table);
  }
  if (op.requestBody) {
    const content = op.requestBody.content || {};
    box.append(el("h4", `Request body (${Object.keys(content).join(", ")})`));
    const json = content["application/json"];
    if (json) box.append(el("pre", schemaText(spec, json.schema, 0)));
    else if (op.requestBody.description) box.append(el("p", op.requestBody.description));
  }
  const table = el("table");
  table.append(el("caption", "Responses"));
  for (const [code, resp] of Object.entries(op.responses || {})) {
    const row = el("tr");
    const types = Object.keys(resp.content || {}).join(", ");
    row.append(el("td", code), el("td", resp.description || ""), el("td", types));
    table.append(row);
  }
  box.append(table);
  return box;
}

async function main() {
  const target = document.getElementById("spec");
  try {
    const reply = await fetch("/api/v1/openapi.json");
    if (!reply.ok) throw new Error(`HTTP ${reply.status}`);
    const spec = await reply.json();
    document.getElementById("title").textContent = `${spec.info.title} ${spec.info.version}`;
    target.replaceChildren(el("p", spec.info.description || ""));
    for (const [path, item] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(item)) {
        target.append(operation(spec, path, method, op));
      }
    }
  } catch (error) {
    target.replaceChildren(el("p", `Cannot load the description: ${error.message}`));
  }
}

document.addEventListener("DOMContentLoaded", main);
