"""Operations endpoints: health, database probes, statistics."""
