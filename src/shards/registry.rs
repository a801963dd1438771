//! Who the shards are. Each shard records its identity (an id made when it was registered,
//! and its ordinal) in its own database, and the catalog shard lists them all, so a shard is
//! known by its id, not its URL (a failover to another host is the same shard), and an
//! instance whose TROVE_SHARDS disagrees with the shards refuses to serve.

use uuid::Uuid;

use super::{shard_index, Shard, ShardSet};
use crate::error::{Error, Result};

/// A shard's identity as its database records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub shard_id: Uuid,
    pub ordinal: i32,
}

fn mismatch(message: String) -> Error {
    Error::invalid("shard_mismatch", message)
}

impl Shard {
    /// The identity this shard's database records, if it was registered.
    pub async fn identity(&self) -> Result<Option<Identity>> {
        let pool = self.current_pool();
        let row = sqlx::query_file!("sql/shard_identity.sql")
            .fetch_optional(&pool)
            .await
            .map_err(Error::Database)?;
        Ok(row.map(|r| Identity {
            shard_id: r.shard_id,
            ordinal: r.ordinal,
        }))
    }

    /// Records `ordinal` and a new id as this shard's identity unless it has one; returns the
    /// identity it has now.
    async fn claim_identity(&self, ordinal: i32) -> Result<Identity> {
        let pool = self.current_pool();
        sqlx::query_file!("sql/shard_identity_insert.sql", Uuid::now_v7(), ordinal)
            .execute(&pool)
            .await
            .map_err(Error::Database)?;
        self.identity()
            .await?
            .ok_or_else(|| Error::Internal(format!("shard {} kept no identity", self.index)))
    }
}

impl ShardSet {
    /// The shards the catalog registers, in ordinal order.
    async fn catalog_shards(&self) -> Result<Vec<Uuid>> {
        let pool = self.all()[0].current_pool();
        let rows = sqlx::query_file!("sql/catalog_shards.sql")
            .fetch_all(&pool)
            .await
            .map_err(Error::Database)?;
        Ok(rows.into_iter().map(|r| r.shard_id).collect())
    }

    /// Checks that TROVE_SHARDS lists the registered shards, in order, each the database it
    /// was; registers a new deployment first (the catalog empty, no shard registered, every
    /// shard reachable), recording the zones and loot tables its shards already hold where
    /// they are. A shard that cannot be reached now is not checked (it fails its own zones
    /// until it answers). Returns each listed shard's id, where known.
    pub async fn register(&self) -> Result<Vec<Option<Uuid>>> {
        let mut identities = Vec::with_capacity(self.len());
        for shard in self.all() {
            // A group's first host may be a standby: find the primary before reading it.
            shard.locate_primary().await;
            identities.push(shard.identity().await);
        }
        let mut catalog = self
            .catalog_shards()
            .await
            .map_err(|e| Error::Unavailable {
                code: "catalog_unavailable",
                message: format!(
                    "the catalog shard (shard 0, {}) cannot be read: {e}",
                    self.all()[0].display_url
                ),
            })?;
        if catalog.is_empty() {
            for (i, id) in identities.iter().enumerate() {
                match id {
                    Ok(Some(id)) => {
                        return Err(mismatch(format!(
                            "shard 0 ({}) has no catalog although shard {i} is registered (as {}): TROVE_SHARDS lists the shards out of order, or another database is in shard 0's place",
                            self.all()[0].display_url, id.shard_id
                        )))
                    }
                    Ok(None) => {}
                    Err(e) => {
                        return Err(mismatch(format!(
                            "registering a new deployment needs every shard; shard {i} ({}): {e}",
                            self.all()[i].display_url
                        )))
                    }
                }
            }
            self.register_new().await?;
            catalog = self.catalog_shards().await?;
            identities.clear();
            for shard in self.all() {
                identities.push(shard.identity().await);
            }
        }
        if catalog.len() > self.len() {
            return Err(mismatch(format!(
                "the catalog registers {} shards but TROVE_SHARDS lists {}: list them all, in order",
                catalog.len(),
                self.len()
            )));
        }
        let mut ids = Vec::with_capacity(self.len());
        for (i, (shard, found)) in self.all().iter().zip(identities).enumerate() {
            let url = &shard.display_url;
            let Some(&expected) = catalog.get(i) else {
                return Err(mismatch(format!(
                    "shard {i} ({url}) is not registered: register it with `trove shards add {url}`"
                )));
            };
            match found {
                Ok(Some(id)) if id.shard_id == expected && id.ordinal == i as i32 => {}
                Ok(Some(id)) => {
                    return Err(mismatch(format!(
                        "shard {i} ({url}) is registered shard {} ({}), not shard {i} ({expected}): TROVE_SHARDS lists the shards out of order, or another database is in its place",
                        id.ordinal, id.shard_id
                    )))
                }
                Ok(None) => {
                    return Err(mismatch(format!(
                        "shard {i} ({url}) has no identity: it is not the database registered as shard {i} ({expected})"
                    )))
                }
                Err(e) => {
                    tracing::warn!(shard = i, error = %e, "shard unreachable: its identity is not checked now");
                }
            }
            ids.push(Some(expected));
        }
        Ok(ids)
    }

    /// Registers every listed shard in order and records what they already hold.
    async fn register_new(&self) -> Result<()> {
        let catalog = self.all()[0].current_pool();
        for (i, shard) in self.all().iter().enumerate() {
            let id = shard.claim_identity(i as i32).await?;
            sqlx::query_file!("sql/catalog_shard_insert.sql", id.ordinal, id.shard_id)
                .execute(&catalog)
                .await
                .map_err(Error::Database)?;
        }
        let (mut tables, mut homes) = (Vec::new(), Vec::new());
        for (i, shard) in self.all().iter().enumerate() {
            let held = sqlx::query_file!("sql/shard_names.sql")
                .fetch_one(&shard.current_pool())
                .await
                .map_err(Error::Database)?;
            sqlx::query_file!("sql/catalog_zones_backfill.sql", &held.zones, i as i32)
                .execute(&catalog)
                .await
                .map_err(Error::Database)?;
            for name in held.loot_tables {
                if !tables.contains(&name) {
                    // The home that numbered its versions so far: the hash over these shards.
                    homes.push(shard_index(&name, self.len()) as i32);
                    tables.push(name);
                }
            }
        }
        sqlx::query_file!("sql/catalog_loot_tables_backfill.sql", &tables, &homes)
            .execute(&catalog)
            .await
            .map_err(Error::Database)?;
        tracing::info!(
            shards = self.len(),
            "registered the shards of a new deployment"
        );
        Ok(())
    }
}

impl ShardSet {
    /// `trove shards add URL`: migrates the database at `url` and registers it as the next
    /// shard, after checking that these are the registered shards. Moves nothing: zones stay
    /// where they are, and new zones land on it only once instances list it (README, "Adding
    /// shards"). Adding the same database again reports it as registered already.
    pub async fn add(&self, url: &str) -> Result<Identity> {
        let new = Shard::new(self.len(), url.trim(), &self.settings)?;
        // A group's first host may be a standby.
        new.locate_primary().await;
        super::MIGRATOR
            .run(&new.current_pool())
            .await
            .map_err(|e| Error::Internal(format!("migrating the new shard: {e}")))?;
        if let Some(id) = new.identity().await? {
            let catalog = self.catalog_shards().await?;
            return if catalog.get(id.ordinal as usize) == Some(&id.shard_id) {
                Ok(id)
            } else {
                Err(mismatch(format!(
                    "{} already carries the identity of shard {} ({}) of another deployment",
                    new.display_url, id.ordinal, id.shard_id
                )))
            };
        }
        // The listed shards are the registered ones, all of them: the new one comes next.
        self.register().await?;
        let id = new.claim_identity(self.len() as i32).await?;
        sqlx::query_file!("sql/catalog_shard_insert.sql", id.ordinal, id.shard_id)
            .execute(&self.all()[0].current_pool())
            .await
            .map_err(Error::Database)?;
        if self.catalog_shards().await?.get(id.ordinal as usize) != Some(&id.shard_id) {
            return Err(mismatch(format!(
                "another shard was registered as shard {} at the same time; add one shard at a time",
                id.ordinal
            )));
        }
        Ok(id)
    }
}
