/** What a dashboard read throws for a load, or anything, that is not there or not the tenant's: a 404. */
export class NotFound extends Error {}
