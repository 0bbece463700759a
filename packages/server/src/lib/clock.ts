/** Time comes from here so lifecycle rules and expiry are testable with a fixed clock. */
export interface Clock {
  now(): Date;
}
export const systemClock: Clock = { now: () => new Date() };
