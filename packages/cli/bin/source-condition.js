// A module.register() resolve hook that adds the "trellis-source" export condition, so the CLI
// (TypeScript run through tsx) loads @trellis/sdk from packages/sdk/src like vitest and tsc do,
// never the built dist/, which could be missing (`npm ci --ignore-scripts`) or stale.
export async function resolve(specifier, context, nextResolve) {
  const conditions = context.conditions ?? [];
  if (conditions.includes("trellis-source")) return nextResolve(specifier, context);
  return nextResolve(specifier, { ...context, conditions: [...conditions, "trellis-source"] });
}
