/** A horizontal bar chart of drop chances, drawn as SVG (colours by rarity, from app.css). */
import { s } from "./dom.js";
import { pct } from "./dom.js";

export interface Bar {
  label: string;
  rarity: string;
  /** 0..1 */
  p: number;
}

const ROW = 30;
const LABEL_W = 150;
const VALUE_W = 64;
const WIDTH = 560;

/** A round top of the axis at or above `max` (0..1), and its step. */
function axis(max: number): { top: number; step: number } {
  for (const step of [0.01, 0.02, 0.05, 0.1, 0.2, 0.25]) {
    const top = Math.ceil(max / step - 1e-9) * step;
    if (top / step <= 5) return { top: Math.min(1, top) || step, step };
  }
  return { top: 1, step: 0.25 };
}

export function barChart(bars: Bar[], title: string): SVGElement {
  const plot = WIDTH - LABEL_W - VALUE_W;
  const { top: max, step } = axis(Math.max(...bars.map((b) => b.p), 0));
  const height = bars.length * ROW + 24;
  const ticks = Array.from({ length: Math.round(max / step) + 1 }, (_, i) => i * step);
  return s(
    "svg",
    { class: "chart", viewBox: `0 0 ${WIDTH} ${height}`, role: "img", "aria-label": title, preserveAspectRatio: "xMinYMin meet" },
    s("title", {}, title),
    ticks.map((t) => {
      const x = LABEL_W + (plot * t) / max;
      return [
        s("line", { class: "chart-grid", x1: x, x2: x, y1: 0, y2: bars.length * ROW }),
        s("text", { class: "chart-tick", x, y: bars.length * ROW + 16, "text-anchor": "middle" }, pct(t, step < 0.05 ? 1 : 0)),
      ];
    }),
    bars.map((b, i) => {
      const y = i * ROW;
      const w = Math.max(b.p > 0 ? 2 : 0, (plot * b.p) / max);
      return s(
        "g",
        { class: `chart-row r-${b.rarity}` },
        s("title", {}, `${b.label} (${b.rarity}): ${pct(b.p, 2)} per roll`),
        s("text", { class: "chart-label", x: LABEL_W - 10, y: y + ROW / 2 + 4, "text-anchor": "end" }, truncate(b.label, 22)),
        s("rect", { class: "chart-bar", x: LABEL_W, y: y + 6, width: w.toFixed(1), height: ROW - 12, rx: 3 }),
        s("text", { class: "chart-value", x: LABEL_W + w + 6, y: y + ROW / 2 + 4 }, pct(b.p, 2)),
      );
    }),
  );
}

function truncate(t: string, n: number): string {
  return t.length > n ? `${t.slice(0, n - 1)}…` : t;
}
