-- Placeholder for migration 0007, which another branch of issue 23 adds (numbers run without
-- gaps); replaced by that branch's file when they are merged.
select 1;
