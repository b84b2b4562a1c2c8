export { GlusterPool, type GlusterPoolArgs } from "./pool";
export type { Connection } from "./connection";
