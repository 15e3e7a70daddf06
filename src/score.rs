//! Score combination, decay, levels and the emission rule (design §4, §5). Placeholder
//! until the scoring issue lands; `engine::level_for` maps scores to levels meanwhile.
