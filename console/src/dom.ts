/** Element creation and formatting: the console's whole "framework". */

type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

/**
 * `h("a.link", { href: "#/zones", onclick: f }, "Zones")`. A tag may carry classes after dots.
 * `on…` keys become listeners; `false`/`null`/`undefined` attributes are left out; no inline
 * styles are ever set (the page's Content-Security-Policy refuses them), classes only.
 */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K | `${K}.${string}`, attrs?: Attrs | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const [name, ...classes] = tag.split(".");
  const el = document.createElement(name as K);
  if (classes.length) el.className = classes.join(" ");
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** An SVG element (for the charts). */
export function s(tag: string, attrs?: Record<string, string | number | undefined>, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs ?? {})) if (v !== undefined) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

function setAttrs(el: HTMLElement, attrs?: Attrs | null): void {
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = [el.className, String(v)].filter(Boolean).join(" ");
    else if (k === "value" && "value" in el) (el as HTMLInputElement).value = String(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
}

/** Replaces an element's children. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

// ---- formatting -----------------------------------------------------------------------------

const numberFormat = new Intl.NumberFormat("en");
export const num = (n: number | null | undefined): string => (n === null || n === undefined ? "–" : numberFormat.format(n));

export function pct(p: number, digits = 1): string {
  if (p > 0 && p < 0.001) return "<0.1%";
  return `${(p * 100).toFixed(digits)}%`;
}

/** `2026-12-01 23:25:30` in the browser's time zone. */
export function when(iso: string | null | undefined): string {
  if (!iso) return "–";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function clock(iso: string): string {
  return when(iso).slice(11);
}

/** `8754911e…a6389c` for long hex; the whole value stays in the title. */
export function shortHex(hex: string | null | undefined, keep = 8): string {
  if (!hex) return "–";
  return hex.length > keep * 2 + 1 ? `${hex.slice(0, keep)}…${hex.slice(-keep)}` : hex;
}

/** A monospace hash, shortened, the whole value in its title and selectable on click. */
export function hash(hex: string | null | undefined, keep = 8): HTMLElement {
  const el = h("code.hash", { title: hex ?? "" }, shortHex(hex, keep));
  if (hex) el.addEventListener("click", () => (el.textContent = el.textContent === hex ? shortHex(hex, keep) : hex));
  return el;
}

export const ZONE_NAME = /^[a-z0-9][a-z0-9_.:-]{0,63}$/;
