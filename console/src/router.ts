/** Hash routes: `#/zones/meadow?x=1` → path ["zones", "meadow"] and the query. */

export interface Route {
  path: string[];
  query: URLSearchParams;
}

export function current(): Route {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [p, q] = splitOnce(raw, "?");
  const path = p
    .split("/")
    .filter(Boolean)
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
  return { path, query: new URLSearchParams(q) };
}

function splitOnce(s: string, sep: string): [string, string] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, ""] : [s.slice(0, i), s.slice(i + 1)];
}

/** `href("zones", "meadow", {after: "x"})` → `#/zones/meadow?after=x` (empty values left out). */
export function href(...parts: (string | Record<string, string | number | null | undefined>)[]): string {
  const segs: string[] = [];
  const q = new URLSearchParams();
  for (const p of parts) {
    if (typeof p === "string") segs.push(encodeURIComponent(p));
    else for (const [k, v] of Object.entries(p)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const qs = q.toString();
  return `#/${segs.join("/")}${qs ? `?${qs}` : ""}`;
}

export function go(to: string): void {
  if (location.hash === to) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = to;
}
