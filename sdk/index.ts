export { GlusterPool, type GlusterPoolArgs } from "./pool";
export { DiskAttachment, type DiskAttachmentArgs } from "./disk";
export type { Connection } from "./connection";
