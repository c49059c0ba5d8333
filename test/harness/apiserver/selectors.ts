/**
 * Label selectors (`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`, `a<1`) and
 * field selectors (`f=v`, `f==v`, `f!=v`, comma means AND), with kube-apiserver's errors for
 * malformed selectors and unsupported field labels.
 */
import { errors } from './status';

export type Matcher = (obj: Record<string, unknown>) => boolean;

interface LabelRequirement {
  key: string;
  op: 'eq' | 'neq' | 'in' | 'notin' | 'exists' | 'notexists' | 'gt' | 'lt';
  values: string[];
}

const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

/** Splits on commas that are not inside parentheses. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
      continue;
    }
    current += ch;
  }
  parts.push(current);
  return parts;
}

function parseLabelRequirement(raw: string, whole: string): LabelRequirement {
  const text = raw.trim();
  const bad = (why: string) => errors.badRequest(`unable to parse requirement: ${why} (selector "${whole}")`);
  const setMatch = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(text);
  let req: LabelRequirement;
  if (setMatch) {
    const values = setMatch[3]!.split(',').map((v) => v.trim());
    req = { key: setMatch[1]!, op: setMatch[2] as 'in' | 'notin', values: values.length === 1 && values[0] === '' ? [] : values };
    if (req.values.length === 0) throw bad(`for 'in', 'notin' operators, values set can't be empty`);
  } else if (text.startsWith('!')) {
    req = { key: text.slice(1).trim(), op: 'notexists', values: [] };
  } else {
    const opMatch = /^([^=!<>\s]+)\s*(==|=|!=|>|<)\s*(.*)$/.exec(text);
    if (opMatch) {
      const ops = { '==': 'eq', '=': 'eq', '!=': 'neq', '>': 'gt', '<': 'lt' } as const;
      req = { key: opMatch[1]!, op: ops[opMatch[2] as keyof typeof ops], values: [opMatch[3]!.trim()] };
      if ((req.op === 'gt' || req.op === 'lt') && !/^-?\d+$/.test(req.values[0]!)) throw bad(`for 'Gt', 'Lt' operators, the value must be an integer`);
    } else {
      req = { key: text, op: 'exists', values: [] };
    }
  }
  if (!LABEL_KEY.test(req.key)) throw bad(`invalid label key "${req.key}"`);
  if (req.op !== 'gt' && req.op !== 'lt') {
    for (const v of req.values) if (!LABEL_VALUE.test(v)) throw bad(`invalid label value: "${v}"`);
  }
  return req;
}

export function parseLabelSelector(selector: string | undefined | null): Matcher {
  if (!selector || !selector.trim()) return () => true;
  const reqs = splitTopLevel(selector).map((part) => parseLabelRequirement(part, selector));
  return (obj) => {
    const labels = ((obj.metadata as { labels?: Record<string, string> } | undefined)?.labels ?? {}) as Record<string, string>;
    return reqs.every((r) => {
      const has = Object.prototype.hasOwnProperty.call(labels, r.key);
      const value = labels[r.key];
      switch (r.op) {
        case 'eq':
          return has && value === r.values[0];
        case 'neq':
          return !has || value !== r.values[0];
        case 'in':
          return has && r.values.includes(value!);
        case 'notin':
          return !has || !r.values.includes(value!);
        case 'exists':
          return has;
        case 'notexists':
          return !has;
        case 'gt':
          return has && /^-?\d+$/.test(value!) && Number(value) > Number(r.values[0]);
        case 'lt':
          return has && /^-?\d+$/.test(value!) && Number(value) < Number(r.values[0]);
      }
    });
  };
}

/** The value of a field label as the apiserver's field set reports it ('' when absent). */
export function fieldValue(obj: Record<string, unknown>, path: string): string {
  let cur: unknown = obj;
  for (const part of path.split('.')) {
    cur = cur !== null && typeof cur === 'object' ? (cur as Record<string, unknown>)[part] : undefined;
  }
  if (cur === undefined || cur === null) {
    // Boolean fields absent read as "false", as upstream field sets are built from typed structs.
    return path === 'spec.unschedulable' || path === 'spec.hostNetwork' ? 'false' : '';
  }
  if (typeof cur === 'object') {
    // `source` on core Events is matched against source.component.
    if (path === 'source') return String((cur as { component?: string }).component ?? '');
    return JSON.stringify(cur);
  }
  return String(cur);
}

export interface FieldSelectorOptions {
  /** Field labels this kind supports besides metadata.name and metadata.namespace. */
  supported: string[];
  kind: string;
  apiVersion: string;
}

export function parseFieldSelector(selector: string | undefined | null, options: FieldSelectorOptions): Matcher {
  if (!selector || !selector.trim()) return () => true;
  const reqs = selector.split(',').map((raw) => {
    const text = raw.trim();
    const m = /^([^=!]+?)\s*(==|=|!=)\s*(.*)$/.exec(text);
    if (!m) throw errors.badRequest(`invalid selector: '${selector}'; can't understand '${text}'`);
    const field = m[1]!.trim();
    if (field !== 'metadata.name' && field !== 'metadata.namespace' && !options.supported.includes(field)) {
      throw errors.badRequest(`field label not supported: ${field}`);
    }
    return { field, negate: m[2] === '!=', value: m[3]!.trim() };
  });
  return (obj) => reqs.every((r) => (fieldValue(obj, r.field) === r.value) !== r.negate);
}
