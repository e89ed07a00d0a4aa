// The part of npm:js-yaml (4.x, which ships no types) that lmkit uses.
declare const yaml: {
  /** Parses one YAML document; throws a YAMLException on bad input. */
  load(text: string, options?: { filename?: string }): unknown;
};
export default yaml;
