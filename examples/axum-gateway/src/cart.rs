//! The session entries this service shares with PHP, as Rust types.
//!
//! Their serde shapes are the contract with the PHP pages: `User` is
//! `$_SESSION['user'] = ['id' => 42, 'name' => 'Ada']`, and `cart` is a PHP
//! list of `['sku' => 'tea', 'qty' => 2]` arrays.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// `$_SESSION['user']`: the logged-in user, set by PHP's login page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user's ID.
    pub id: i64,
    /// Display name.
    pub name: String,
}

/// One entry of `$_SESSION['cart']`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Stock keeping unit.
    pub sku: String,
    /// How many.
    pub qty: u32,
}

/// Session entry names, as the PHP pages spell them.
pub const USER: &str = "user";
/// See [`USER`].
pub const CART: &str = "cart";

/// The session is stored whole on every write, and PHP reads it whole on
/// every request: a client must not be able to grow it without bound.
pub const MAX_ITEMS: usize = 100;
const MAX_SKU_LEN: usize = 64;
const MAX_QTY: u32 = 999;

/// The body of `POST /api/cart`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    sku: String,
    qty: u32,
}

impl NewItem {
    /// The item to store, once it is within this service's limits.
    pub fn validate(self) -> Result<Item, ApiError> {
        let sku = self.sku.trim();
        let sku_ok = !sku.is_empty()
            && sku.len() <= MAX_SKU_LEN
            && sku
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !sku_ok {
            return Err(ApiError::Refused(format!(
                "sku must be 1 to {MAX_SKU_LEN} characters from A-Z a-z 0-9 - _ ."
            )));
        }
        if !(1..=MAX_QTY).contains(&self.qty) {
            return Err(ApiError::Refused(format!("qty must be 1 to {MAX_QTY}")));
        }
        Ok(Item {
            sku: sku.to_owned(),
            qty: self.qty,
        })
    }
}

/// Adds `item` to `cart`, unless the cart is full.
pub fn add(cart: &mut Vec<Item>, item: Item) -> Result<(), ApiError> {
    if cart.len() >= MAX_ITEMS {
        return Err(ApiError::Refused(format!(
            "the cart already holds {MAX_ITEMS} items"
        )));
    }
    cart.push(item);
    Ok(())
}

#[cfg(test)]
mod tests {
    use stickless::php::{SerializeHandler, Session};

    use super::*;

    fn new_item(sku: &str, qty: u32) -> NewItem {
        NewItem {
            sku: sku.to_owned(),
            qty,
        }
    }

    #[test]
    fn reads_what_php_login_writes() {
        // `$_SESSION['user'] = ['id' => 42, 'name' => 'Ada']; $_SESSION['cart'] = [];`
        let stored = br#"user|a:2:{s:2:"id";i:42;s:4:"name";s:3:"Ada";}cart|a:0:{}"#;
        let session = Session::decode(SerializeHandler::Php, stored).expect("PHP session data");
        let user: Option<User> = session.get(USER).expect("a user");
        assert_eq!(
            user,
            Some(User {
                id: 42,
                name: "Ada".into()
            })
        );
        let cart: Option<Vec<Item>> = session.get(CART).expect("a cart");
        assert_eq!(cart, Some(vec![]));
    }

    #[test]
    fn writes_a_cart_php_reads_as_a_list_of_arrays() {
        let mut session = Session::new();
        let cart = vec![Item {
            sku: "tea".into(),
            qty: 2,
        }];
        session.set(CART, &cart).expect("a PHP value");
        let written = session.encode(SerializeHandler::Php).expect("encodes");
        assert_eq!(
            written,
            br#"cart|a:1:{i:0;a:2:{s:3:"sku";s:3:"tea";s:3:"qty";i:2;}}"#
        );
    }

    #[test]
    fn new_items_are_checked() {
        assert_eq!(
            new_item(" tea ", 2).validate().ok(),
            Some(Item {
                sku: "tea".into(),
                qty: 2
            })
        );
        for (sku, qty) in [
            ("", 1),
            ("tea", 0),
            ("tea", 1000),
            ("<b>", 1),
            (&*"x".repeat(65), 1),
        ] {
            assert!(
                matches!(new_item(sku, qty).validate(), Err(ApiError::Refused(_))),
                "{sku:?} x{qty}"
            );
        }
    }

    #[test]
    fn a_full_cart_takes_no_more() {
        let item = Item {
            sku: "tea".into(),
            qty: 1,
        };
        let mut cart = vec![item.clone(); MAX_ITEMS - 1];
        assert!(add(&mut cart, item.clone()).is_ok());
        assert!(matches!(add(&mut cart, item), Err(ApiError::Refused(_))));
        assert_eq!(cart.len(), MAX_ITEMS);
    }
}
