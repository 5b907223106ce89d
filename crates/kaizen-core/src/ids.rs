//! Identifiers in MLflow's formats: 32-hex run ids, numeric experiment ids, `m-` logged model ids,
//! and generated run names.

use rand::Rng;

/// A new run id: 32 lowercase hex characters, as MLflow's `uuid.uuid4().hex`.
pub fn new_run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A new logged model id, `m-` followed by 32 hex characters, as MLflow 3 makes them.
pub fn new_logged_model_id() -> String {
    format!("m-{}", uuid::Uuid::new_v4().simple())
}

const ADJECTIVES: &[&str] = &[
    "abundant",
    "agreeable",
    "amazing",
    "ambitious",
    "auspicious",
    "awesome",
    "bedecked",
    "big",
    "bold",
    "brawny",
    "bright",
    "bustling",
    "calm",
    "capable",
    "carefree",
    "casual",
    "chill",
    "classy",
    "clean",
    "clever",
    "colorful",
    "crawling",
    "dapper",
    "debonair",
    "delicate",
    "fearless",
    "gentle",
    "gifted",
    "glamorous",
    "grandiose",
    "honorable",
    "industrious",
    "intelligent",
    "judicious",
    "kindly",
    "learned",
    "likeable",
    "loud",
    "luminous",
    "marvelous",
    "mercurial",
    "merciful",
    "nebulous",
    "placid",
    "polite",
    "popular",
    "puzzled",
    "rambunctious",
    "redolent",
    "resilient",
    "righteous",
    "rogue",
    "rumbling",
    "salty",
    "secretive",
    "selective",
    "sedate",
    "serious",
    "shivering",
    "silent",
    "skillful",
    "smiling",
    "stately",
    "sneaky",
    "spiffy",
    "stylish",
    "suave",
    "thoughtful",
    "traveling",
    "trusting",
    "unequaled",
    "upbeat",
    "useful",
    "valuable",
    "victorious",
    "wise",
    "worried",
    "zealous",
];

const NOUNS: &[&str] = &[
    "ant", "ape", "asp", "auk", "bass", "bat", "bear", "bee", "bird", "boar", "bug", "calf",
    "carp", "cat", "chimp", "cod", "colt", "conch", "cow", "crab", "crane", "croc", "crow", "cub",
    "deer", "doe", "dog", "dolphin", "donkey", "dove", "duck", "eel", "elk", "fawn", "finch",
    "fish", "flea", "fly", "foal", "fowl", "fox", "frog", "gnat", "gnu", "goat", "goose", "grouse",
    "grub", "gull", "hare", "hawk", "hen", "hog", "horse", "hound", "jay", "kit", "kite", "koi",
    "lamb", "lark", "loon", "lynx", "mare", "midge", "mink", "mole", "moose", "moth", "mouse",
    "mule", "newt", "owl", "ox", "panda", "penguin", "perch", "pig", "pug", "quail", "ram", "rat",
    "ray", "robin", "roo", "rook", "seal", "shad", "shark", "sheep", "shoat", "shrew", "shrike",
    "shrimp", "skink", "skunk", "sloth", "slug", "smelt", "snail", "snake", "snipe", "sow",
    "sponge", "squid", "squirrel", "stag", "steed", "stoat", "stork", "swan", "tern", "toad",
    "trout", "turtle", "vole", "wasp", "whale", "wolf", "worm", "wren", "yak", "zebra",
];

/// A readable run name such as `bold-wolf-42`, generated when a run is created without one.
pub fn new_run_name() -> String {
    let mut rng = rand::rng();
    let adjective = ADJECTIVES[rng.random_range(0..ADJECTIVES.len())];
    let noun = NOUNS[rng.random_range(0..NOUNS.len())];
    let number: u32 = rng.random_range(0..1000);
    format!("{adjective}-{noun}-{number}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        let id = super::new_run_id();
        assert_eq!(id.len(), 32);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert!(super::new_logged_model_id().starts_with("m-"));
        assert_eq!(super::new_run_name().split('-').count(), 3);
    }
}
