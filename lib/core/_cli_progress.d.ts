// The part of npm:cli-progress that lib/core/progress.ts uses (its @types package pulls in a
// @types/node that Deno cannot resolve).
declare const cliProgress: {
  SingleBar: new (
    options: {
      format?: string;
      stream?: unknown;
      clearOnComplete?: boolean;
      hideCursor?: boolean;
    },
    preset?: unknown,
  ) => {
    start(total: number, value: number): void;
    update(value: number): void;
    stop(): void;
  };
  Presets: { shades_classic: unknown };
};
export default cliProgress;
