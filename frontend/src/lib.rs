//! builder-frontend
