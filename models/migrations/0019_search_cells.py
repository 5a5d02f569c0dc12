"""Search: the grid-cell index of the live ``property_search`` table (``models.search.index.CELL``).

Broad map searches sorted newest first read the newest rows of each 0.01 x 0.01 degree cell of
their box from it (``docs/search.md``). A frozen copy of the index's definition as of this
migration; full rebuilds create it from ``models/search/index.py``. On a large index it takes a
while to build (about 30 s for 4.4 million rows), during which listing changes wait to be indexed.
"""


def up(migrator, db):
    db.execute_sql("""
    CREATE INDEX property_search_cell_newest ON property_search USING btree (
        ((floor(location[1] * 100)::integer + 9000) * 36001 + floor(location[0] * 100)::integer + 18000),
        listed_at, id)
        INCLUDE (standard_status, property_type, list_price, bedrooms_total, bathrooms_total, living_area,
                 year_built, location);
    """)


def down(migrator, db):
    # A full rebuild names the live table's indexes after its generation. The driver formats the
    # statement (peewee passes parameters, if empty), so a literal percent sign is written %%.
    db.execute_sql("""
    DO $$
    DECLARE name text;
    BEGIN
        FOR name IN SELECT indexname FROM pg_indexes
                    WHERE tablename = 'property_search' AND right(indexname, 12) = '_cell_newest' LOOP
            EXECUTE format('DROP INDEX %%I', name);
        END LOOP;
    END $$;
    """)
