//! Hostile tenants: names Steward would use cannot be made to collide.
