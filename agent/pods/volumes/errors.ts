/** A volume that cannot be set up; the message is what `kubectl describe` shows after "MountVolume.SetUp failed". */
export class VolumeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VolumeError';
  }
}

export const DEFAULT_MODE = 0o644;
