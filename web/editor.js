// editor.js: the SQL editor of the dashboard (CodeMirror 6 from npm, bundled
// by esbuild in `make web`): PostgreSQL highlighting, completion of the
// current database's tables and columns, Ctrl/⌘+Enter to run, and the
// server's error position as a marker.
import { EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter, drawSelection } from "@codemirror/view";
import { Compartment, EditorState, Prec } from "@codemirror/state";
import { defaultKeymap, history, historyKeymap } from "@codemirror/commands";
import { syntaxHighlighting, HighlightStyle, bracketMatching } from "@codemirror/language";
import { tags as t } from "@lezer/highlight";
import { autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap } from "@codemirror/autocomplete";
import { sql, PostgreSQL } from "@codemirror/lang-sql";
import { setDiagnostics } from "@codemirror/lint";

// Colours come from CSS variables (style.css), so the light and dark themes
// both read well.
const highlight = HighlightStyle.define([
  { tag: [t.keyword, t.operatorKeyword, t.modifier], color: "var(--hl-keyword)", fontWeight: "600" },
  { tag: [t.string, t.special(t.string)], color: "var(--hl-string)" },
  { tag: [t.number, t.bool, t.null], color: "var(--hl-number)" },
  { tag: [t.typeName, t.standard(t.name)], color: "var(--hl-type)" },
  { tag: [t.comment, t.lineComment, t.blockComment], color: "var(--muted)", fontStyle: "italic" },
  { tag: [t.special(t.name), t.quote], color: "var(--hl-string)" },
]);

// The editor's own setup: CodeMirror's basicSetup without search, folding
// and the lint gutter, which the dashboard does not use (a smaller bundle);
// Tab is left to the browser, so the keyboard can leave the editor.
const setup = [
  lineNumbers(), highlightActiveLineGutter(), highlightActiveLine(), history(), drawSelection(),
  syntaxHighlighting(highlight), bracketMatching(), closeBrackets(), autocompletion(),
  keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap, ...completionKeymap]),
];

// bounds returns the [from, to) ranges between the semicolons of doc,
// skipping those inside quotes and comments.
function bounds(doc) {
  const out = [];
  let start = 0;
  for (let i = 0; i < doc.length; i++) {
    const c = doc[i];
    if (c === "'" || c === '"') {
      const end = doc.indexOf(c, i + 1);
      i = end < 0 ? doc.length : end;
    } else if (c === "-" && doc[i + 1] === "-") {
      const end = doc.indexOf("\n", i);
      i = end < 0 ? doc.length : end;
    } else if (c === "/" && doc[i + 1] === "*") {
      const end = doc.indexOf("*/", i + 2);
      i = end < 0 ? doc.length : end + 1;
    } else if (c === ";") {
      out.push([start, i]);
      start = i + 1;
    }
  }
  out.push([start, doc.length]);
  return out;
}

// splitStatements returns the non-empty statements of doc, trimmed.
export function splitStatements(doc) {
  return bounds(doc).map(([a, b]) => doc.slice(a, b).trim()).filter((s) => s);
}

// statementAt returns {from, to, text} of the statement under pos.
export function statementAt(doc, pos) {
  const all = bounds(doc);
  // The statement the cursor is in, or the last non-empty one before it.
  let pick = all.find(([a, b]) => pos >= a && pos <= b && doc.slice(a, b).trim());
  if (!pick) pick = all.filter(([a, b]) => a <= pos && doc.slice(a, b).trim()).pop() || all.find(([a, b]) => doc.slice(a, b).trim());
  if (!pick) return { from: 0, to: 0, text: "" };
  const [a, b] = pick;
  const raw = doc.slice(a, b);
  const lead = raw.length - raw.trimStart().length;
  const text = raw.trim();
  return { from: a + lead, to: a + lead + text.length, text };
}

// createEditor mounts the editor in parent. onRun({text, from}) is called by
// Ctrl/⌘+Enter with the selection, or the statement under the cursor.
export function createEditor(parent, { doc, label, onRun }) {
  const lang = new Compartment();
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        setup,
        lang.of(sql({ dialect: PostgreSQL, upperCaseKeywords: false })),
        Prec.highest(keymap.of([{ key: "Mod-Enter", run: () => { onRun(current()); return true; } }])),
        EditorView.contentAttributes.of({ "aria-label": label }),
        EditorView.lineWrapping,
        EditorView.theme({
          "&": { fontSize: "14px", backgroundColor: "var(--field)", color: "var(--fg)" },
          ".cm-content": { fontFamily: "ui-monospace, 'DejaVu Sans Mono', monospace", caretColor: "var(--fg)" },
          ".cm-gutters": { backgroundColor: "var(--card2)", color: "var(--muted)", borderRight: "1px solid var(--line)" },
          ".cm-activeLine": { backgroundColor: "var(--active)" },
          ".cm-activeLineGutter": { backgroundColor: "var(--active)" },
          "&.cm-focused": { outline: "none" },
          ".cm-tooltip": { backgroundColor: "var(--card)", color: "var(--fg)", border: "1px solid var(--line)" },
          ".cm-tooltip-autocomplete ul li[aria-selected]": { backgroundColor: "var(--accent)", color: "var(--accent-fg)" },
          ".cm-selectionBackground, &.cm-focused .cm-selectionBackground": { backgroundColor: "var(--sel) !important" },
        }),
      ],
    }),
  });
  // current: the selection when there is one, else the statement under the cursor.
  function current() {
    const sel = view.state.selection.main;
    const text = view.state.doc.toString();
    if (!sel.empty) {
      const raw = text.slice(sel.from, sel.to);
      const lead = raw.length - raw.trimStart().length;
      return { text: raw.trim(), from: sel.from + lead };
    }
    const st = statementAt(text, sel.head);
    return { text: st.text, from: st.from };
  }
  return {
    view,
    current,
    get value() { return view.state.doc.toString(); },
    set value(s) { view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: s }, selection: { anchor: s.length } }); },
    focus() { view.focus(); },
    // setSchema feeds completion: {"schema.table": ["col", …], "table": […]}.
    setSchema(schema) { view.dispatch({ effects: lang.reconfigure(sql({ dialect: PostgreSQL, schema, upperCaseKeywords: false })) }); },
    // markError underlines the word at offset (0-based, in the document), or clears with null.
    markError(offset, message) {
      if (offset === null) { view.dispatch(setDiagnostics(view.state, [])); return; }
      const len = view.state.doc.length;
      const from = Math.min(Math.max(0, offset), len);
      let to = from;
      const text = view.state.doc.toString();
      while (to < len && /[\w$."]/.test(text[to])) to++;
      if (to === from) to = Math.min(len, from + 1);
      view.dispatch(setDiagnostics(view.state, [{ from, to, severity: "error", message }]));
    },
  };
}
