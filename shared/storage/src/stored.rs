//! Enums kept as text in a column: one declaration gives the variants,
//! their stored text, parsing (an unknown text is an error naming the enum)
//! and `Display`.

/// Declares an enum stored as text:
///
/// ```
/// recur_storage::stored_enum!(Color { Red => "red", Green => "green" });
/// assert_eq!(Color::Red.as_str(), "red");
/// assert_eq!("green".parse::<Color>(), Ok(Color::Green));
/// assert!("blue".parse::<Color>().is_err());
/// ```
///
/// Attributes before the name (`#[derive(serde::Serialize)]`) are added to
/// the enum's own derives.
#[macro_export]
macro_rules! stored_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $(#[$meta])*
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored for this variant.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} {:?}", stringify!($name), $crate::excerpt(other))),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
