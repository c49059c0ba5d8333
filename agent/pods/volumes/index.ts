export { createVolumeManager, SUPPORTED_VOLUME_TYPES, volumeType, type VolumeManager, type VolumeManagerOptions } from './volume-manager';
export { createSystemMounter, createFakeMounter, type Mounter } from './mounter';
export { writeAtomic, type Payload } from './atomic-writer';
export { VolumeError } from './errors';
