// The app's topic map, shared by server and client: every topic name and payload is checked by it.
export interface ProfileUpdated {
  type: 'profile_updated'
  userId: string
  tgUsername: string
  photoUrl: string
  updatedAt: string
}

export type Topics = {
  profile: ProfileUpdated
  [k: `user:${string}`]: ProfileUpdated
}
