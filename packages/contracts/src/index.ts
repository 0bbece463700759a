export * from "./api";
export * from "./audit";
export * from "./errors";
export * from "./ids";
export * from "./scopes";
