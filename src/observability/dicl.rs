//! DICL examples in `tensorzero.dicl_examples`: the `k` nearest to a query embedding, by
//! cosine distance, and loading new ones.
//!
//! With pgvector the table's `embedding` is a `vector` and Postgres ranks the examples
//! (`<=>`, as TensorZero's Postgres query does). Without it, migrations make the column a
//! `real[]` and the gateway ranks them itself, reading at most [`MAX_IN_GATEWAY`] examples:
//! fine for the small example sets DICL is used with, and said in the log.

use deadpool_postgres::Pool;
use uuid::Uuid;

/// The most examples of one variant the gateway ranks itself (without pgvector).
pub const MAX_IN_GATEWAY: i64 = 5_000;

/// How examples are ranked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ranking {
    /// By Postgres, with pgvector's cosine distance.
    Pgvector,
    /// By the gateway, over at most [`MAX_IN_GATEWAY`] examples.
    InGateway,
}

/// One example, with its distance to the query.
#[derive(Clone, Debug)]
pub struct Example {
    /// A StoredInput, serialized.
    pub input: String,
    /// The output, serialized (chat: ContentBlockChatOutput array; json: `{raw, parsed}`).
    pub output: String,
    /// Cosine distance to the query.
    pub distance: f64,
}

fn db(e: impl std::fmt::Display) -> String {
    format!("DICL examples: {e}")
}

/// How this database ranks examples (`None`: it has no `dicl_examples` table).
pub async fn ranking(pool: &Pool) -> Result<Option<Ranking>, String> {
    let client = pool.get().await.map_err(db)?;
    let kind: Option<String> = client
        .query_opt(
            "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
             WHERE a.attrelid = to_regclass('tensorzero.dicl_examples') AND a.attname = 'embedding'",
            &[],
        )
        .await
        .map_err(db)?
        .map(|row| row.get(0));
    Ok(kind.map(|k| {
        if k.starts_with("vector") {
            Ranking::Pgvector
        } else {
            Ranking::InGateway
        }
    }))
}

/// pgvector's text form of a vector.
fn vector_literal(v: &[f32]) -> String {
    let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", parts.join(","))
}

/// Cosine distance (1 - cosine similarity); 1 when either vector is zero, as pgvector's is
/// undefined there.
pub fn cosine_distance(a: &[f32], b: &[f32]) -> Option<f64> {
    if a.len() != b.len() {
        return None;
    }
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return Some(1.0);
    }
    Some(1.0 - dot / (na.sqrt() * nb.sqrt()))
}

/// The `k` examples of `function`/`variant` nearest to `query`, nearest first, within
/// `max_distance` when given.
pub async fn nearest(
    pool: &Pool,
    ranking: Ranking,
    function: &str,
    variant: &str,
    query: &[f32],
    k: u32,
    max_distance: Option<f64>,
) -> Result<Vec<Example>, String> {
    let client = pool.get().await.map_err(db)?;
    let mut examples = match ranking {
        Ranking::Pgvector => client
            .query(
                "SELECT input, output, (embedding <=> $1::text::vector)::float8 AS distance FROM tensorzero.dicl_examples
                 WHERE function_name = $2 AND variant_name = $3 ORDER BY distance ASC LIMIT $4",
                &[&vector_literal(query), &function, &variant, &i64::from(k)],
            )
            .await
            .map_err(db)?
            .iter()
            .map(|row| Example {
                input: row.get(0),
                output: row.get(1),
                distance: row.get(2),
            })
            .collect(),
        Ranking::InGateway => {
            let rows = client
                .query(
                    "SELECT input, output, embedding FROM tensorzero.dicl_examples
                     WHERE function_name = $1 AND variant_name = $2 ORDER BY created_at DESC LIMIT $3",
                    &[&function, &variant, &MAX_IN_GATEWAY],
                )
                .await
                .map_err(db)?;
            let mut ranked: Vec<Example> = rows
                .iter()
                .filter_map(|row| {
                    let embedding: Vec<f32> = row.get(2);
                    Some(Example {
                        input: row.get(0),
                        output: row.get(1),
                        distance: cosine_distance(query, &embedding)?,
                    })
                })
                .collect();
            ranked.sort_by(|a, b| a.distance.total_cmp(&b.distance));
            ranked.truncate(k as usize);
            ranked
        }
    };
    if let Some(max) = max_distance {
        examples.retain(|e| e.distance <= max);
    }
    Ok(examples)
}

/// Adds examples of `function`/`variant` (`namespace` is always empty, as TensorZero writes
/// it).
pub async fn insert(
    pool: &Pool,
    ranking: Ranking,
    function: &str,
    variant: &str,
    examples: &[(String, String, Vec<f32>)],
) -> Result<(), String> {
    let mut client = pool.get().await.map_err(db)?;
    let tx = client.transaction().await.map_err(db)?;
    for (input, output, embedding) in examples {
        let id = Uuid::now_v7();
        match ranking {
            Ranking::Pgvector => tx
                .execute(
                    "INSERT INTO tensorzero.dicl_examples (id, function_name, variant_name, namespace, input, output, embedding, created_at)
                     VALUES ($1, $2, $3, '', $4, $5, $6::text::vector, NOW())",
                    &[&id, &function, &variant, input, output, &vector_literal(embedding)],
                )
                .await,
            Ranking::InGateway => tx
                .execute(
                    "INSERT INTO tensorzero.dicl_examples (id, function_name, variant_name, namespace, input, output, embedding, created_at)
                     VALUES ($1, $2, $3, '', $4, $5, $6, NOW())",
                    &[&id, &function, &variant, input, output, embedding],
                )
                .await,
        }
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_distances() {
        assert_eq!(cosine_distance(&[1.0, 0.0], &[1.0, 0.0]), Some(0.0));
        assert!((cosine_distance(&[1.0, 0.0], &[0.0, 1.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((cosine_distance(&[1.0, 0.0], &[-1.0, 0.0]).unwrap() - 2.0).abs() < 1e-12);
        assert_eq!(cosine_distance(&[1.0], &[1.0, 2.0]), None);
        assert_eq!(cosine_distance(&[0.0, 0.0], &[1.0, 2.0]), Some(1.0));
    }

    #[test]
    fn vectors_in_pgvector_text() {
        assert_eq!(vector_literal(&[0.5, -1.0]), "[0.5,-1]");
    }
}
