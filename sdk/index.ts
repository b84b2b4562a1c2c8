export { GlusterVolume, type GlusterVolumeArgs } from "./glusterVolume";
export { GlusterPool, type GlusterPoolArgs } from "./pool";
export { ImageVolume, type ImageVolumeArgs, type ImageVolumeSource } from "./volume";
export { DiskAttachment, type DiskAttachmentArgs } from "./disk";
export type { Connection } from "./connection";
export { GlusterStorage, type GlusterStorageArgs } from "./storage";
