/** Small DOM helpers: elements built with properties and children, text never parsed as HTML. */

type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Record<string, string> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) element.setAttribute(name, value);
  for (const child of children) if (child) element.append(child);
  return element;
}

export function byId<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`the page has no #${id}`);
  return element as T;
}

/** A time as people read it, in their own zone, to the second. */
export function clock(iso: string | null): string {
  if (iso === null) return "–";
  const at = new Date(iso);
  return `${at.toLocaleDateString()} ${at.toLocaleTimeString()}`;
}

/** How far ``iso`` is from now: "in 4m 10s" or "12s ago". */
export function relative(iso: string | null, now = Date.now()): string {
  if (iso === null) return "";
  const seconds = Math.round((new Date(iso).getTime() - now) / 1000);
  const size = Math.abs(seconds);
  const text = size >= 3600 ? `${Math.floor(size / 3600)}h ${Math.floor((size % 3600) / 60)}m`
    : size >= 60 ? `${Math.floor(size / 60)}m ${size % 60}s` : `${size}s`;
  return seconds >= 0 ? `in ${text}` : `${text} ago`;
}
