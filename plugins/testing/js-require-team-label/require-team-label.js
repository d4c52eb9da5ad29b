// require-team-label's admission review in JavaScript: every Deployment must say which team owns
// it. A test component, for the benchmark that compares languages in each slot; never deploy it.
//
// It answers as the Rust example does (../../examples/require-team-label/src/lib.rs), to the
// character: tests/api/languages.rs holds it to that. Where JavaScript and Rust differ (JSON
// parsing, trimming), the code below follows Rust.

import { log } from "kubeop:plugin/host@0.1.1";

// Our rule's id: it starts every finding, and operators name it in `audit-rules`.
const RULE = "team-label";

// The export of the `platform-admission` world: `admit: func(request: admit-request) ->
// admission-response` (fields in camelCase, an absent option is `undefined`).
export function admit(request) {
  const response = decide(request);
  if (response.message != null) {
    log("info", `denied: ${response.message}`);
  }
  return response;
}

function decide(request) {
  const review = parseJson(request.review);
  if (review === INVALID) {
    return deny("the admission review is not valid JSON");
  }

  // 1. Only Deployments (group `apps`) being created or updated, never their subresources.
  const kind = member(review, "kind");
  const isDeployment = member(kind, "group") === "apps" && member(kind, "kind") === "Deployment";
  const operation = text(member(review, "operation"));
  const subresource = text(member(review, "subResource"));
  if (!isDeployment || (operation !== "CREATE" && operation !== "UPDATE") || subresource !== "") {
    return allow([]);
  }

  // 2. The rule: a non-empty `metadata.labels.team`.
  const team = text(member(member(member(member(review, "object"), "metadata"), "labels"), "team"));
  if (trimWhiteSpace(team) !== "") {
    return allow([]);
  }

  // 3. The finding, as kubeop's built-in review words its own.
  const finding = `[${RULE}] metadata.labels.team: every Deployment needs a team label`;

  // 4. In audit mode the denial becomes a warning.
  if (request.admission.auditRules.includes(RULE)) {
    return allow([`audit: ${finding}`]);
  }
  return deny(finding);
}

const allow = (warnings) => ({ allowed: true, message: undefined, warnings, patch: undefined });
const deny = (message) => ({ allowed: false, message, warnings: [], patch: undefined });

// JSON.parse, refusing what serde_json refuses and JSON.parse accepts: more than 127 nested
// arrays and objects, escaped surrogates that are not a pair ("\ud800"), and numbers beyond what
// serde_json's own float parsing holds (see `serdeOverflows`).
const INVALID = Symbol("invalid JSON");
const MAX_DEPTH = 127;

function parseJson(json) {
  let value;
  try {
    value = JSON.parse(json);
  } catch {
    return INVALID;
  }
  if (!serdeReads(value, 0)) {
    return INVALID;
  }
  // Only a number with 200 digits in a row or an exponent of 3 digits can overflow, so most
  // reviews skip the scan (a string in the text may trigger it: it only costs time).
  if (MAY_OVERFLOW.test(json)) {
    for (const [token] of json.matchAll(STRING_OR_NUMBER)) {
      if (token[0] !== '"' && serdeOverflows(token)) {
        return INVALID;
      }
    }
  }
  return value;
}

// Whether serde_json reads `value`, found inside `depth` arrays and objects.
function serdeReads(value, depth) {
  if (typeof value === "string") {
    return value.isWellFormed();
  }
  if (value === null || typeof value !== "object") {
    return true;
  }
  if (depth === MAX_DEPTH) {
    return false;
  }
  if (Array.isArray(value)) {
    return value.every((item) => serdeReads(item, depth + 1));
  }
  return Object.entries(value).every(([key, item]) => key.isWellFormed() && serdeReads(item, depth + 1));
}

const MAY_OVERFLOW = /[0-9]{200}|[eE]\+?[0-9]{3}/;
const STRING_OR_NUMBER = /"(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*/g;
const U64_MAX = 2n ** 64n - 1n;
const I32_MAX = 2 ** 31 - 1;
const I32_MIN = -(2 ** 31);
const POW10 = Array.from({ length: 309 }, (_, k) => Number(`1e${k}`));

// Whether serde_json (without its float_roundtrip feature) refuses the JSON number `token` as
// out of range. It keeps at most a u64 of digits, ignoring the rest, and multiplies by a power
// of ten once, rounding twice: 1.7976931348623158e308, which JSON.parse reads as f64::MAX,
// overflows there. A port of its parse_integer, parse_decimal, parse_exponent, f64_from_parts.
function serdeOverflows(token) {
  let i = token[0] === "-" ? 1 : 0;
  let significand = 0n;
  let exponent = 0;
  // The integer part: digits past a u64 only raise the exponent.
  let full = false;
  for (; isDigit(token[i]); i++) {
    const next = significand * 10n + BigInt(token[i]);
    full ||= next > U64_MAX;
    if (full) {
      exponent += 1;
    } else {
      significand = next;
    }
  }
  // The fraction: digits past a u64 are dropped.
  if (token[i] === ".") {
    for (i++; isDigit(token[i]); i++) {
      const next = significand * 10n + BigInt(token[i]);
      if (next > U64_MAX) {
        while (isDigit(token[i])) i++;
        break;
      }
      significand = next;
      exponent -= 1;
    }
  }
  if (token[i] === "e" || token[i] === "E") {
    const positive = token[++i] !== "-";
    if (token[i] === "+" || token[i] === "-") i++;
    let written = 0;
    for (; isDigit(token[i]); i++) {
      written = written * 10 + Number(token[i]);
      if (written > I32_MAX) {
        return positive && significand !== 0n;
      }
    }
    exponent = positive ? Math.min(exponent + written, I32_MAX) : Math.max(exponent - written, I32_MIN);
  }
  if (exponent < 0) {
    return false; // divisions: at worst 0
  }
  const float = Number(significand);
  return exponent < POW10.length ? !Number.isFinite(float * POW10[exponent]) : float !== 0;
}

function isDigit(c) {
  return c >= "0" && c <= "9";
}

// `value[key]` when `value` is an object with that key, as serde_json's `get` and `pointer`
// read it; anything else (null, an array, a string, a key of Object.prototype) is `undefined`.
function member(value, key) {
  const isObject = value !== null && typeof value === "object" && !Array.isArray(value);
  return isObject && Object.hasOwn(value, key) ? value[key] : undefined;
}

// `as_str().unwrap_or("")`: a string, or "" for any other value.
function text(value) {
  return typeof value === "string" ? value : "";
}

// Rust's `str::trim`, which strips Unicode White_Space: JavaScript's own `trim` would also strip
// U+FEFF and keep U+0085.
const WHITE_SPACE = "[\\t\\n\\v\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]";
const EDGE_WHITE_SPACE = new RegExp(`^${WHITE_SPACE}+|${WHITE_SPACE}+$`, "g");
function trimWhiteSpace(value) {
  return value.replace(EDGE_WHITE_SPACE, "");
}
