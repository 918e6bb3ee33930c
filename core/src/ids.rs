//! Random ids: task ids, deployment ids, request ids.

/// Random lowercase hex, `len` characters.
pub fn new_id(len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}
