// tierkit dashboard: how numbers are written. Pure functions, loaded before dashboard.js
// (and run by tests/logic/dashboard/test_format_js.py under node).
"use strict";

// A share as a percentage that never hides a nonzero value: 20 labels in 49,926
// answers is "0.040 %", not "0.0 %". One decimal from 1 % up; below, two
// significant digits; exactly 0 is "0 %" and anything else never rounds to it.
function sharePct(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const p = 100 * v;
  if (p === 0) return "0 %";
  if (Math.abs(p) >= 1) return p.toFixed(1) + " %";
  return p.toPrecision(2) + " %";
}

if (typeof module !== "undefined") module.exports = { sharePct };
